"""Documents to page images: an image is one page; a PDF is rendered page by page (pdfium, in
the worker processes of ``pdf_render``), within a page limit and the same pixel limit as images.

``probe`` counts and sizes every page from the headers before anything is decoded or rendered
(so the request's memory cost and limits are known up front); ``page_image`` then decodes or
renders one page at a time. Nothing here calls pdfium in the service's own process.
"""

from __future__ import annotations

import math
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
from .pdf_render import PdfWorkers

PDF_MAGIC = b"%PDF-"
PDF_DPI = 144

_default_workers: PdfWorkers | None = None


def default_workers() -> PdfWorkers:
    """A process-wide pool for callers that bring none (tools and tests); the service brings its own."""
    global _default_workers
    if _default_workers is None:
        _default_workers = PdfWorkers()
    return _default_workers


def is_pdf(data: bytes) -> bool:
    return data[:1024].lstrip().startswith(PDF_MAGIC)


@dataclass(frozen=True)
class Probed:
    """A document whose pages were counted and sized before any was decoded or rendered."""

    data: bytes
    kind: Literal["image", "pdf"]
    sizes: tuple[tuple[int, int], ...]  # (width, height) of each page as it will be decoded/rendered
    bytes_per_pixel: int  # what decoding or rendering a page holds at its peak, per pixel
    key: int = 0  # a PDF's key in its worker pool


def probe(data: bytes, file_type: str, max_pages: int, max_pixels: int, dpi: int = PDF_DPI,
          pdf: PdfWorkers | None = None) -> Probed:
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
    opened = (pdf or default_workers()).open(data)
    n = len(opened.sizes_pt)
    if n == 0:
        raise CorruptImage("the PDF has no pages")
    if n > max_pages:
        raise PayloadTooLarge(f"the PDF has {n} pages, more than the {max_pages} allowed")
    sizes = []
    for i, (w_pt, h_pt) in enumerate(opened.sizes_pt):
        size = (max(1, math.ceil(w_pt * scale)), max(1, math.ceil(h_pt * scale)))
        if size[0] * size[1] > max_pixels:
            raise ImageTooLarge(f"page {i + 1} renders to {size[0]}x{size[1]} pixels, more than the "
                                f"{max_pixels} allowed")
        sizes.append(size)
    return Probed(data, "pdf", tuple(sizes), PDF_RENDER_BYTES_PER_PIXEL, opened.key)


def page_image(doc: Probed, index: int, max_pixels: int, dpi: int = PDF_DPI,
               pdf: PdfWorkers | None = None) -> np.ndarray:
    """Page ``index`` of a probed document as a BGR image: decoded, or rendered on its own (one
    page's pixels at a time)."""
    if doc.kind == "image":
        return decode_image(doc.data, max_pixels)
    img = (pdf or default_workers()).render(doc.key, doc.data, index, dpi / 72.0, doc.sizes[index])
    if img.shape[1] * img.shape[0] > max_pixels:  # pdfium's rounding may differ from the probe's by a pixel
        raise ImageTooLarge(f"page {index + 1} rendered to more than the {max_pixels} pixels allowed")
    return img


def render_pdf(data: bytes, max_pages: int, max_pixels: int, dpi: int = PDF_DPI,
               pdf: PdfWorkers | None = None) -> list[np.ndarray]:
    """Every page of a PDF (probed first, so no limit is found out after rendering)."""
    doc = probe(data, "pdf", max_pages, max_pixels, dpi, pdf)
    return [page_image(doc, i, max_pixels, dpi, pdf) for i in range(len(doc.sizes))]


def load_pages(data: bytes, file_type: str, max_pages: int, max_pixels: int,
               pdf: PdfWorkers | None = None) -> tuple[str, list[np.ndarray]]:
    """("image" | "pdf", BGR pages), all at once; the service streams with probe + page_image."""
    doc = probe(data, file_type, max_pages, max_pixels, pdf=pdf)
    return doc.kind, [page_image(doc, i, max_pixels, pdf=pdf) for i in range(len(doc.sizes))]
