"""Documents to page images: an image is one page; a PDF is rendered page by page (pypdfium2),
within a page limit and the same pixel limit as images."""

from __future__ import annotations

import threading

import numpy as np

from .errors import CorruptImage, ImageTooLarge, PayloadTooLarge, UnsupportedImageFormat
from .imaging import decode_image

PDF_MAGIC = b"%PDF-"

# One lock for every pdfium call in the process (see render_pdf).
PDFIUM_LOCK = threading.Lock()


def is_pdf(data: bytes) -> bool:
    return data[:1024].lstrip().startswith(PDF_MAGIC)


def render_pdf(data: bytes, max_pages: int, max_pixels: int, dpi: int = 144) -> list[np.ndarray]:
    # pdfium is not thread-safe, not even across documents (pypdfium2's docs), and this runs in
    # worker threads (asyncio.to_thread): every pdfium call, from opening to the last close, is made
    # under PDFIUM_LOCK, and every pdfium object is closed explicitly inside it, so that no
    # finalizer calls pdfium later from whatever thread the garbage collector runs in.
    with PDFIUM_LOCK:
        import pypdfium2 as pdfium

        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError:
            raise CorruptImage("the PDF cannot be opened (corrupt, truncated or encrypted)") from None
        try:
            n = len(pdf)
            if n == 0:
                raise CorruptImage("the PDF has no pages")
            if n > max_pages:
                raise PayloadTooLarge(f"the PDF has {n} pages, more than the {max_pages} allowed")
            scale = dpi / 72.0
            pages = []
            for i in range(n):
                page = pdf[i]
                try:
                    w, h = page.get_size()
                    if w * h * scale * scale > max_pixels:
                        raise ImageTooLarge(f"page {i + 1} renders to more than the {max_pixels} pixels allowed")
                    bitmap = page.render(scale=scale, draw_annots=True)
                    try:
                        # BGR(x) -> BGR, copied out of the bitmap's buffer before the bitmap is closed
                        pages.append(np.array(bitmap.to_numpy()[:, :, :3], copy=True, order="C"))
                    finally:
                        bitmap.close()
                finally:
                    page.close()
            return pages
        finally:
            pdf.close()


def load_pages(data: bytes, file_type: str, max_pages: int, max_pixels: int) -> tuple[str, list[np.ndarray]]:
    """("image" | "pdf", BGR pages). file_type: "image", "pdf" or "auto" (by content)."""
    if file_type == "auto":
        file_type = "pdf" if is_pdf(data) else "image"
    if file_type == "pdf":
        if not is_pdf(data):
            raise UnsupportedImageFormat("fileType says PDF but the data is not a PDF")
        return "pdf", render_pdf(data, max_pages, max_pixels)
    return "image", [decode_image(data, max_pixels)]
