"""Documents to page images: an image is one page; a PDF is rendered page by page (pypdfium2),
within a page limit and the same pixel limit as images.

``probe`` counts and sizes every page from the headers before anything is decoded or rendered
(so the request's memory cost and limits are known up front); ``page_image`` then decodes or
renders one page at a time.
"""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .budget import (
    DECODE_ALPHA_BYTES_PER_PIXEL,
    DECODE_BYTES_PER_PIXEL,
    DECODE_DEEP_BYTES_PER_PIXEL,
    PDF_RENDER_BYTES_PER_PIXEL,
)
from .errors import CorruptImage, ImageTooLarge, PayloadTooLarge, UnsupportedImageFormat
from .imaging import decode_image, probe_image

PDF_MAGIC = b"%PDF-"
PDF_DPI = 144

# One lock for every pdfium call in the process (see render_pdf).
PDFIUM_LOCK = threading.Lock()


def is_pdf(data: bytes) -> bool:
    return data[:1024].lstrip().startswith(PDF_MAGIC)


@dataclass(frozen=True)
class Probed:
    """A document whose pages were counted and sized before any was decoded or rendered."""

    data: bytes
    kind: Literal["image", "pdf"]
    sizes: tuple[tuple[int, int], ...]  # (width, height) of each page as it will be decoded/rendered
    bytes_per_pixel: int  # what decoding or rendering a page holds at its peak, per pixel


def probe(data: bytes, file_type: str, max_pages: int, max_pixels: int, dpi: int = PDF_DPI) -> Probed:
    """Count and size the pages from the headers alone, with every limit checked: an image is
    one page; a PDF's pages are sized from its page boxes. file_type: "image", "pdf" or "auto"."""
    if file_type == "auto":
        file_type = "pdf" if is_pdf(data) else "image"
    if file_type != "pdf":
        w, h, kind = probe_image(data, max_pixels)
        per_pixel = {"alpha": DECODE_ALPHA_BYTES_PER_PIXEL, "deep": DECODE_DEEP_BYTES_PER_PIXEL}.get(kind, DECODE_BYTES_PER_PIXEL)
        return Probed(data, "image", ((w, h),), per_pixel)
    if not is_pdf(data):
        raise UnsupportedImageFormat("fileType says PDF but the data is not a PDF")
    scale = dpi / 72.0
    with _pdf(data) as pdf:
        n = len(pdf)
        if n == 0:
            raise CorruptImage("the PDF has no pages")
        if n > max_pages:
            raise PayloadTooLarge(f"the PDF has {n} pages, more than the {max_pages} allowed")
        sizes = []
        for i in range(n):
            page = _page(pdf, i)
            try:
                w, h = page.get_size()
            finally:
                page.close()
            size = (max(1, math.ceil(w * scale)), max(1, math.ceil(h * scale)))
            if size[0] * size[1] > max_pixels:
                raise ImageTooLarge(f"page {i + 1} renders to {size[0]}x{size[1]} pixels, more than the "
                                    f"{max_pixels} allowed")
            sizes.append(size)
    return Probed(data, "pdf", tuple(sizes), PDF_RENDER_BYTES_PER_PIXEL)


def page_image(doc: Probed, index: int, max_pixels: int, dpi: int = PDF_DPI) -> np.ndarray:
    """Page ``index`` of a probed document as a BGR image: decoded, or rendered on its own (one
    page's pixels at a time)."""
    if doc.kind == "image":
        return decode_image(doc.data, max_pixels)
    with _pdf(doc.data) as pdf:
        page = _page(pdf, index)
        try:
            bitmap = page.render(scale=dpi / 72.0, draw_annots=True)
        except pdfium().PdfiumError:
            raise CorruptImage(f"page {index + 1} of the PDF cannot be rendered") from None
        finally:
            page.close()
        try:
            # BGR(x) -> BGR, copied out of the bitmap's buffer before the bitmap is closed
            return np.array(bitmap.to_numpy()[:, :, :3], copy=True, order="C")
        finally:
            bitmap.close()


def pdfium():
    import pypdfium2

    return pypdfium2


@contextmanager
def _pdf(data: bytes):
    """An open PdfDocument, used and closed under PDFIUM_LOCK. pdfium is not thread-safe, not
    even across documents (pypdfium2's docs), and this runs in worker threads (asyncio.to_thread):
    every pdfium call, from opening to the last close, is made under the lock, and every pdfium
    object is closed explicitly inside it, so that no finalizer calls pdfium later from whatever
    thread the garbage collector runs in."""
    with PDFIUM_LOCK:
        lib = pdfium()
        try:
            pdf = lib.PdfDocument(data)
        except lib.PdfiumError:
            raise CorruptImage("the PDF cannot be opened (corrupt, truncated or encrypted)") from None
        try:
            yield pdf
        except lib.PdfiumError:
            raise CorruptImage("the PDF is corrupt (pdfium could not read it)") from None
        finally:
            pdf.close()


def _page(pdf, index: int):
    """Page ``index``; a page the document lists but does not have (a /Count larger than its
    real pages, a broken page tree) is a corrupt PDF, a 400."""
    try:
        return pdf[index]
    except (pdfium().PdfiumError, IndexError, ValueError):
        raise CorruptImage(f"page {index + 1} of the PDF is missing or broken") from None


def render_pdf(data: bytes, max_pages: int, max_pixels: int, dpi: int = PDF_DPI) -> list[np.ndarray]:
    """Every page of a PDF (probed first, so no limit is found out after rendering)."""
    doc = probe(data, "pdf", max_pages, max_pixels, dpi)
    return [page_image(doc, i, max_pixels, dpi) for i in range(len(doc.sizes))]


def load_pages(data: bytes, file_type: str, max_pages: int, max_pixels: int) -> tuple[str, list[np.ndarray]]:
    """("image" | "pdf", BGR pages), all at once; the service streams with probe + page_image."""
    doc = probe(data, file_type, max_pages, max_pixels)
    return doc.kind, [page_image(doc, i, max_pixels) for i in range(len(doc.sizes))]
