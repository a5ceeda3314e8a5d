"""Image decoding: every supported format and mode, EXIF, transparency, and every bad input."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from preprocess_service import errors
from preprocess_service.imaging import decode_base64, decode_image

LIMIT = 40_000_000


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _sample_rgb() -> Image.Image:
    arr = np.zeros((40, 60, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # red block on the left
    arr[:, 20:40] = (0, 255, 0)
    arr[:, 40:] = (0, 0, 255)
    return Image.fromarray(arr, "RGB")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "BMP", "WEBP"])
def test_supported_formats_decode_to_bgr(fmt):
    kw = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    out = decode_image(_encode(_sample_rgb(), fmt, **kw), LIMIT)
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    b, g, r = out[20, 5].astype(int)
    assert r > 200 and g < 60 and b < 60  # red stays red: channels are BGR


def test_exif_orientation_is_applied():
    im = _sample_rgb()  # 60 wide, 40 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    data = _encode(im, "JPEG", exif=exif.tobytes(), quality=95)
    out = decode_image(data, LIMIT)
    assert out.shape[:2] == (60, 40)
    b, g, r = out[5, 20].astype(int)  # the red (left) block is now on top
    assert r > 200 and g < 60


def test_alpha_only_text_is_composited_on_white():
    rgba = np.zeros((20, 30, 4), np.uint8)  # RGB all black, text only in alpha
    rgba[5:15, 5:25, 3] = 255
    out = decode_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"), LIMIT)
    assert out[0, 0].tolist() == [255, 255, 255]  # transparent -> white
    assert out[10, 10].tolist() == [0, 0, 0]  # opaque black stays black


@pytest.mark.parametrize("mode", ["L", "1", "P", "LA", "PA", "I;16", "I"])
def test_modes(mode):
    base = Image.fromarray(np.tile(np.arange(0, 250, 5, dtype=np.uint8), (10, 1)), "L")
    if mode == "I;16":
        im = Image.frombytes("I;16", base.size, (np.asarray(base).astype("<u2") * 257).tobytes())
    elif mode == "I":
        im = Image.fromarray(np.asarray(base).astype(np.int32) * 257, "I")
    elif mode == "PA":
        im = base.convert("RGBA").convert("PA") if hasattr(Image, "Palette") else base.convert("LA")
    else:
        im = base.convert(mode)
    fmt = "TIFF" if mode in ("I", "PA") else "PNG"
    out = decode_image(_encode(im, fmt), LIMIT)
    assert out.shape == (10, 50, 3) and out.dtype == np.uint8
    if mode not in ("1", "P", "PA"):
        # 16-bit values are brought to 8-bit, not clipped: the ramp is preserved
        np.testing.assert_allclose(out[0, :, 0].astype(int), np.arange(0, 250, 5), atol=2)


def test_palette_with_transparency():
    im = Image.new("P", (10, 10), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.info["transparency"] = 0
    im.putpixel((5, 5), 1)
    out = decode_image(_encode(im, "PNG", transparency=0), LIMIT)
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[5, 5].tolist() == [0, 0, 255]


def test_16_bit_rgb_png():
    arr = (np.random.default_rng(0).integers(0, 65535, (8, 8, 3))).astype(np.uint16)
    import cv2

    ok, png = cv2.imencode(".png", arr)
    assert ok
    out = decode_image(png.tobytes(), LIMIT)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8


def test_multi_frame_tiff_takes_first_page():
    frames = [Image.new("RGB", (20, 10), c) for c in ((255, 255, 255), (0, 0, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:])
    out = decode_image(buf.getvalue(), LIMIT)
    assert out.shape == (10, 20, 3) and out.mean() == 255


# --- base64 ---------------------------------------------------------------------------


def test_base64_variants():
    data = bytes(range(256)) * 3
    std = base64.b64encode(data).decode()
    assert decode_base64(std) == data
    assert decode_base64(base64.urlsafe_b64encode(data).decode()) == data
    assert decode_base64(std.rstrip("=")) == data  # padding optional
    assert decode_base64("data:image/png;base64," + std) == data
    assert decode_base64("\n".join(std[i:i + 76] for i in range(0, len(std), 76))) == data  # MIME line breaks


@pytest.mark.parametrize("value", ["not base64!", "abc$", "data:image/png,abc", "YW Jj\x00"])
def test_invalid_base64(value):
    with pytest.raises(errors.InvalidBase64):
        decode_base64(value)


@pytest.mark.parametrize("value", ["", "   ", "data:image/png;base64,"])
def test_empty_image_field(value):
    with pytest.raises(errors.EmptyImage):
        decode_base64(value)


# --- bad images -----------------------------------------------------------------------


def test_not_an_image():
    with pytest.raises(errors.UnsupportedImageFormat, match="not an image"):
        decode_image(b"hello, this is text and not a picture", LIMIT)


@pytest.mark.parametrize("fmt", ["GIF", "ICO", "PDF"])
def test_unsupported_formats(fmt):
    data = _encode(_sample_rgb(), fmt)
    with pytest.raises(errors.UnsupportedImageFormat):
        decode_image(data, LIMIT)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "WEBP", "BMP"])
def test_truncated_images(fmt):
    big = Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8), "RGB")
    data = _encode(big, fmt)
    with pytest.raises(errors.CorruptImage):  # 400: starts like the format, cannot be decoded
        decode_image(data[: len(data) // 2], LIMIT)


def test_zero_bytes():
    with pytest.raises(errors.EmptyImage):
        decode_image(b"", LIMIT)


def test_pixel_limit_is_checked_before_decoding():
    # a 20000x20000 PNG of one colour compresses to a few hundred KB: a decompression bomb
    import struct
    import zlib

    w = h = 20000
    raw = zlib.compress(b"".join(b"\x00" + b"\x00" * w for _ in range(64)))  # rows are never decoded
    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")
    with pytest.raises(errors.ImageTooLarge, match="20000x20000"):
        decode_image(png, LIMIT)
