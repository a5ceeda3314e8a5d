"""Draw the found lines over the image: boxes and their text, returned as JPEG bytes."""

from __future__ import annotations

import cv2
import numpy as np


def draw(img: np.ndarray, boxes: list[list[list[int]]], texts: list[str], quality: int = 85) -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    canvas = img.copy()
    for box in boxes:
        cv2.polylines(canvas, [np.asarray(box, dtype=np.int32).reshape(-1, 1, 2)], True, (0, 160, 0), 2)
    pil = Image.fromarray(cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB))
    painter = ImageDraw.Draw(pil)
    for box, text in zip(boxes, texts):
        x, y = box[0]
        size = max(10, min(28, int(abs(box[3][1] - box[0][1]) * 0.6)))
        font = ImageFont.load_default(size=size)
        top = max(0, y - size - 2)
        painter.rectangle(painter.textbbox((x, top), text, font=font), fill=(255, 255, 255))
        painter.text((x, top), text, fill=(200, 0, 0), font=font)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(np.asarray(pil), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return jpeg.tobytes()
