"""Small helpers shared by tests: render text images, encode them."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def render_lines(lines: list[str], size: int = 32, margin: int = 40, spacing: float = 1.8) -> Image.Image:
    if not FONT.exists():
        raise AssertionError(f"{FONT} missing: `make test` installs fonts-dejavu-core")
    font = ImageFont.truetype(str(FONT), size)
    width = max(int(font.getlength(t)) for t in lines) + 2 * margin
    height = int(len(lines) * size * spacing) + 2 * margin
    im = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(im)
    for i, text in enumerate(lines):
        draw.text((margin, margin + int(i * size * spacing)), text, fill="black", font=font)
    return im


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def to_bgr(im: Image.Image) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(im.convert("RGB"))[:, :, ::-1])


def pdf_bytes(pages: list[list[str]]) -> bytes:
    """An image PDF, one rendered page per list of lines."""
    images = [render_lines(lines, size=30) for lines in pages]
    buf = io.BytesIO()
    images[0].save(buf, format="PDF", save_all=True, append_images=images[1:], resolution=72)
    return buf.getvalue()


# The lines of evaluation/data/tess_phototest.png, as the default pipeline reads them.
PHOTOTEST = [
    "This is a lot of 12 point text to test the",
    "ocr code and see if it works on all types",
    "of file format.",
    "The quick brown dog jumped over the",
    "lazy fox. The quick brown dog jumped",
    "over the lazy fox. The quick brown dog",
    "jumped over the lazy fox. The quick",
    "brown dog jumped over the lazy fox.",
]


def eventually(predicate, timeout_s: float, every_s: float = 0.1) -> bool:
    """True as soon as ``predicate()`` is; False if it is not within ``timeout_s`` (a wait on a
    condition, not a fixed sleep)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(every_s)
