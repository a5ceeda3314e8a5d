"""Draw the found lines over the image: boxes and their text, returned as JPEG bytes.

The text is drawn in a CJK-capable font (the recogniser reads Chinese, Japanese and Korean):
the OCR_VISUALIZE_FONT setting if set, else the first of CJK_FONTS present (the image installs Debian's
fonts-wqy-microhei). Without one, Pillow's default font draws CJK characters as boxes; that is
logged once."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

FONT_SETTING = "OCR_VISUALIZE_FONT"
# Debian's packages, smallest first: WenQuanYi Micro Hei (fonts-wqy-microhei, the one the image
# and `make test` install), Droid Sans Fallback, Noto Sans CJK, WenQuanYi Zen Hei.
CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)


def _loads(path: str) -> bool:
    from PIL import ImageFont

    try:
        ImageFont.truetype(path, 12)
        return True
    except OSError:
        return False


@functools.lru_cache(maxsize=8)
def _find_font(override: str | None) -> str | None:
    if override:
        if _loads(override):
            return override
        log.warning("%s=%s cannot be loaded as a font; looking for a CJK font elsewhere", FONT_SETTING, override)
    for path in CJK_FONTS:
        if os.path.exists(path) and _loads(path):
            return path
    log.warning("no CJK-capable font found (looked for %s): visualisations draw Chinese, Japanese and Korean "
                "text as boxes. Install fonts-wqy-microhei, or set %s to a font file that has the glyphs.",
                ", ".join(([override] if override else []) + list(CJK_FONTS)) or "none", FONT_SETTING)
    return None


def font_path(override: Path | str | None = None) -> str | None:
    """The font file visualisations draw text with (``override``: the OCR_VISUALIZE_FONT setting),
    or None for Pillow's default (no CJK glyphs). Looked up once per override."""
    return _find_font(str(override) if override else None)


def draw(img: np.ndarray, boxes: list[list[list[int]]], texts: list[str], quality: int = 85,
         font: Path | str | None = None) -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    path = font_path(font)
    fonts: dict[int, ImageFont.FreeTypeFont | ImageFont.ImageFont] = {}  # per call: fonts are not shared across threads

    def font_of(size: int):
        if size not in fonts:
            fonts[size] = ImageFont.truetype(path, size) if path else ImageFont.load_default(size=size)
        return fonts[size]

    canvas = img.copy()
    for box in boxes:
        cv2.polylines(canvas, [np.asarray(box, dtype=np.int32).reshape(-1, 1, 2)], True, (0, 160, 0), 2)
    pil = Image.fromarray(cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB))
    painter = ImageDraw.Draw(pil)
    for box, text in zip(boxes, texts):
        x, y = box[0]
        size = max(10, min(28, int(abs(box[3][1] - box[0][1]) * 0.6)))
        face = font_of(size)
        top = max(0, y - size - 2)
        painter.rectangle(painter.textbbox((x, top), text, font=face), fill=(255, 255, 255))
        painter.text((x, top), text, fill=(200, 0, 0), font=face)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(np.asarray(pil), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return jpeg.tobytes()
