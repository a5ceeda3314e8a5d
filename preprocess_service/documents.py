"""Documents to page images: an image is one page; a PDF is rendered page by page (pypdfium2),
within a page limit and the same pixel limit as images."""

from __future__ import annotations

import numpy as np

from .errors import CorruptImage, ImageTooLarge, PayloadTooLarge, UnsupportedImageFormat
from .imaging import decode_image

PDF_MAGIC = b"%PDF-"


def is_pdf(data: bytes) -> bool:
    return data[:1024].lstrip().startswith(PDF_MAGIC)


def render_pdf(data: bytes, max_pages: int, max_pixels: int, dpi: int = 144) -> list[np.ndarray]:
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
            w, h = page.get_size()
            if w * h * scale * scale > max_pixels:
                raise ImageTooLarge(f"page {i + 1} renders to more than the {max_pixels} pixels allowed")
            bitmap = page.render(scale=scale, draw_annots=True)
            rgb = bitmap.to_numpy()[:, :, :3]  # BGRx -> BGR (pdfium renders BGR(A) by default)
            pages.append(np.ascontiguousarray(rgb))
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
