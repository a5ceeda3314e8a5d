"""Cut each detected quadrilateral out of the image as an upright, axis-aligned line image."""

from __future__ import annotations

import cv2
import numpy as np

TALL_RATIO = 1.5  # crops this much taller than wide are vertical text: turn them to horizontal


def crop_box(img: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Perspective crop of a (4, 2) box ordered tl, tr, br, bl."""
    box = box.astype(np.float32)
    width = int(max(np.linalg.norm(box[0] - box[1]), np.linalg.norm(box[2] - box[3])))
    height = int(max(np.linalg.norm(box[0] - box[3]), np.linalg.norm(box[1] - box[2])))
    width, height = max(width, 1), max(height, 1)
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(box, target)
    crop = cv2.warpPerspective(
        img, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC
    )
    if crop.shape[0] >= crop.shape[1] * TALL_RATIO:
        crop = np.rot90(crop)
    return np.ascontiguousarray(crop)


def crop_all(img: np.ndarray, boxes: list[np.ndarray]) -> list[np.ndarray]:
    return [crop_box(img, b) for b in boxes]
