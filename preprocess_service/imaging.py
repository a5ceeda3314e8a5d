"""Decode what the client sent into a BGR uint8 image, or say precisely what is wrong with it.

base64 (standard or URL-safe, with or without padding, or a ``data:`` URL) -> bytes ->
Pillow -> EXIF orientation applied -> transparency composited on white -> 8-bit BGR.
"""

from __future__ import annotations

import binascii
import io
import re
import struct
import warnings

import cv2
import numpy as np
import pybase64
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import CorruptImage, EmptyImage, ImageTooLarge, InvalidBase64, UnsupportedImageFormat

SUPPORTED_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "TIFF": "TIFF", "BMP": "BMP", "WEBP": "WebP"}
SUPPORTED_LIST = "PNG, JPEG, TIFF, BMP, WebP"

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, not a half-grey image
# Our own pixel limit (OCR_MAX_IMAGE_PIXELS) is checked from the header, before decoding; Pillow's
# bomb check stays as a second net at the highest limit the setting allows (its warning is an
# error in _open).
PIXEL_NET = 400_000_000
Image.MAX_IMAGE_PIXELS = PIXEL_NET
# Only the accepted formats' plugins ever parse client bytes (no EPS through Ghostscript, no
# PSD, ICO or any of Pillow's other decoders, whatever the bytes claim to be).
OPEN_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WEBP")  # JPEG opens MPO too

_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,", re.IGNORECASE)
_WHITESPACE = b" \t\n\r\x0b\x0c"  # what a base64 body may be wrapped with (MIME lines), removed


def decode_base64(value: str, field: str = "image") -> bytes:
    """Bytes from a base64 string or a data: URL. Raises InvalidBase64 / EmptyImage."""
    text = value.strip()
    if text.startswith("data:"):
        m = _DATA_URL.match(text)
        if not m:
            raise InvalidBase64("data: URL must be of the form data:<type>;base64,<data>")
        text = text[m.end():]
    raw = text.encode("ascii", errors="replace")
    if not raw:
        raise EmptyImage(f"the {field} field is empty")
    try:  # the common case first: no whitespace inside (a regex over 20 MiB holds the GIL for 0.2 s)
        data = _b64decode(raw)
    except (binascii.Error, ValueError):
        raw = raw.translate(None, _WHITESPACE)
        if not raw:
            raise EmptyImage(f"the {field} field is empty") from None
        try:
            data = _b64decode(raw)
        except (binascii.Error, ValueError):
            raise InvalidBase64(f"the {field} field is not valid base64") from None
    if not data:
        raise EmptyImage(f"the {field} field decodes to zero bytes")
    return data


def _b64decode(raw: bytes) -> bytes:
    """Standard or URL-safe base64, padding optional; raises on anything else."""
    altchars = b"-_" if (b"-" in raw or b"_" in raw) else None
    if len(raw) % 4:
        raw += b"=" * (-len(raw) % 4)
    return pybase64.b64decode(raw, altchars=altchars, validate=True)


DEEP_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # more than 8 bits per sample


def probe_image(data: bytes, max_pixels: int) -> tuple[int, int, str]:
    """(width, height, kind) from the image's header alone, with the same checks as decoding
    (format, pixel limit): what decoding it will cost is known before a pixel is decoded. kind:
    "alpha" (composited on white), "deep" (16-bit or float samples) or "plain"."""
    im, _fmt = _open(data, max_pixels)
    kind = "alpha" if _has_alpha(im) else "deep" if im.mode in DEEP_MODES else "plain"
    im.close()
    return im.size[0], im.size[1], kind


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """A HxWx3 BGR uint8 array from encoded image bytes."""
    im, fmt = _open(data, max_pixels)
    try:
        im.load()
        try:
            im = ImageOps.exif_transpose(im)
        except Exception:  # a malformed EXIF block must not lose an otherwise good image
            pass
        return _to_bgr(im)
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
        raise CorruptImage(f"the {SUPPORTED_FORMATS[fmt]} data is truncated or corrupt ({type(exc).__name__})") from None


def _open(data: bytes, max_pixels: int) -> tuple[Image.Image, str]:
    """The image opened lazily (header read, no pixels decoded) and its format, once checked."""
    if not data:
        raise EmptyImage("the image is empty (zero bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im: Image.Image = Image.open(io.BytesIO(data), formats=OPEN_FORMATS)
    except UnidentifiedImageError:
        raise UnsupportedImageFormat(f"the data is not an image in a supported format ({SUPPORTED_LIST})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(f"the image has more than the {max_pixels} pixels allowed") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptImage(f"the image header cannot be read ({type(exc).__name__})") from None

    fmt = (im.format or "").upper()
    if fmt not in SUPPORTED_FORMATS:
        raise UnsupportedImageFormat(f"{im.format or 'this'} images are not supported; send {SUPPORTED_LIST}")
    width, height = im.size
    if width <= 0 or height <= 0:
        raise CorruptImage("the image has a zero width or height")
    if width * height > max_pixels:
        raise ImageTooLarge(f"the image has {width}x{height} pixels, more than the {max_pixels} allowed")
    return im, fmt


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    a = arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.floating):
        hi = float(np.nanmax(a)) if a.size else 1.0
        a = a * 255.0 if hi <= 1.0 else a
    elif arr.dtype == np.uint16 or float(a.max(initial=0)) > 255:
        a = a / 257.0  # 16-bit range to 8-bit
    return np.clip(np.nan_to_num(a), 0, 255).astype(np.uint8)


def _on_white(rgba: np.ndarray, band_rows: int = 256) -> np.ndarray:
    """RGBA (H x W x 4 uint8) composited on white, as BGR, a band of rows at a time: the only
    full-size buffer besides the input is the output (no RGBA canvas, no RGB copy)."""
    h, w = rgba.shape[:2]
    out = np.empty((h, w, 3), np.uint8)
    for top in range(0, h, band_rows):
        band = rgba[top:top + band_rows]
        alpha = band[:, :, 3:4].astype(np.uint16)
        # (c * a + 255 * (255 - a)) / 255, rounded, in integers
        mixed = (band[:, :, 2::-1].astype(np.uint16) * alpha + 255 * (255 - alpha) + 127) // 255
        out[top:top + band_rows] = mixed
    return out


def _to_bgr(im: Image.Image) -> np.ndarray:
    if _has_alpha(im):
        rgba = np.asarray(im if im.mode == "RGBA" else im.convert("RGBA"))
        im.close()
        return _on_white(rgba)
    if im.mode in DEEP_MODES:
        gray = _to_uint8(np.asarray(im))
        return cv2.cvtColor(np.ascontiguousarray(gray), cv2.COLOR_GRAY2BGR)
    if im.mode in ("1", "L"):
        gray = np.asarray(im.convert("L"))
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR)
