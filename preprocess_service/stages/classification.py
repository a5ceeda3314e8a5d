"""Optional 0/180 text-line orientation: crops -> tensor batches, probabilities -> turned crops."""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..model_spec import ClsSpec
from .detection import normalize_to_chw


def preprocess(crops: list[np.ndarray], spec: ClsSpec) -> np.ndarray:
    """(N, 3, H, W) float32: each crop resized to the model height, keeping its aspect ratio up
    to the model width, and right-padded with zeros."""
    h, w = spec.image_height, spec.image_width
    batch = np.zeros((len(crops), 3, h, w), dtype=np.float32)
    for i, crop in enumerate(crops):
        ch, cw = crop.shape[:2]
        rw = min(w, max(1, int(math.ceil(h * cw / max(ch, 1)))))
        resized = cv2.resize(crop, (rw, h), interpolation=cv2.INTER_LINEAR)
        batch[i, :, :, :rw] = normalize_to_chw(resized, spec.norm)
    return batch


def preprocess_u8(crops: list[np.ndarray], spec: ClsSpec) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 3) uint8 and (N, 1) int64 valid widths: the same resize and right-padding as
    ``preprocess``, for a model whose input head normalises and zeroes the padding itself."""
    h, w = spec.image_height, spec.image_width
    batch = np.zeros((len(crops), h, w, 3), dtype=np.uint8)
    widths = np.zeros((len(crops), 1), dtype=np.int64)
    for i, crop in enumerate(crops):
        ch, cw = crop.shape[:2]
        rw = min(w, max(1, int(math.ceil(h * cw / max(ch, 1)))))
        batch[i, :, :rw] = cv2.resize(crop, (rw, h), interpolation=cv2.INTER_LINEAR)
        widths[i, 0] = rw
    return batch, widths


def apply(crops: list[np.ndarray], probs: np.ndarray, spec: ClsSpec, thresh: float) -> list[bool]:
    """Turn crops classified as upside down (with at least `thresh` confidence) in place.
    Returns which crops were turned."""
    turned = []
    labels = probs.argmax(axis=1)
    for i, (label, p) in enumerate(zip(labels, probs.max(axis=1))):
        flip = "180" in spec.labels[int(label)] and float(p) >= thresh
        if flip:
            crops[i] = cv2.rotate(crops[i], cv2.ROTATE_180)
        turned.append(flip)
    return turned
