"""Text recognition: line crops -> padded tensor batches, CTC probabilities -> text + confidence."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..model_spec import Normalization, RecSpec
from .detection import normalize_to_chw

REC_NORM = Normalization(scale=1.0 / 255.0, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


@dataclass(frozen=True)
class RecBatch:
    indices: list[int]  # positions of the crops of this batch in the input list
    tensor: np.ndarray  # (n, 3, H, W) float32, or (n, H, W, 3) uint8 for a model with the uint8 head
    widths: np.ndarray | None = None  # (n, 1) int64: each row's width before padding (uint8 only)


def batch_width(ratios: list[float], spec: RecSpec, multiple: int = 0, min_width: int | None = None) -> int:
    """Width of a batch: the widest crop at model height, at least `min_width` (None: the model's
    base width, as PaddleOCR pads), rounded up to `multiple` when given (few distinct shapes
    batch well on a server)."""
    floor = spec.base_width if min_width is None else max(min_width, 1)
    width = max(floor, max(int(math.ceil(spec.image_height * r)) for r in ratios) if ratios else 0)
    if multiple:
        width = int(math.ceil(width / multiple)) * multiple
    return min(spec.max_width, width)


def width_bucket(width: int, buckets: tuple[int, ...]) -> int:
    """The smallest bucket that holds ``width``; the largest when none does (the crop is squeezed)."""
    for b in buckets:
        if b >= width:
            return b
    return buckets[-1]


def plan_batches(crops: list[np.ndarray], spec: RecSpec, batch_size: int, width_multiple: int = 0,
                 min_width: int | None = None, uint8: bool = False,
                 width_buckets: tuple[int, ...] = ()) -> list[RecBatch]:
    """Crops sorted by aspect ratio, cut into batches, each padded to its widest crop: with zeros
    after normalising (float32), or (``uint8``) as raw pixels with each row's valid width, for a
    model whose input head normalises and zeroes the padding itself.

    With ``width_buckets`` (shape buckets) every batch is exactly one bucket wide: crops are
    grouped by the bucket their width needs, then cut into batches, so a batch's width is one of
    a few fixed values instead of its widest crop's."""
    h = spec.image_height
    ratios = [c.shape[1] / max(c.shape[0], 1) for c in crops]
    order = sorted(range(len(crops)), key=lambda i: ratios[i])
    groups: list[tuple[list[int], int]] = []
    if width_buckets:
        floor = spec.base_width if min_width is None else max(min_width, 1)
        by_bucket: dict[int, list[int]] = {}
        for i in order:
            need = max(floor, int(math.ceil(h * ratios[i])))
            by_bucket.setdefault(width_bucket(need, width_buckets), []).append(i)
        for width, members in sorted(by_bucket.items()):
            groups += [(members[s:s + batch_size], width) for s in range(0, len(members), batch_size)]
    else:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            groups.append((idx, batch_width([ratios[i] for i in idx], spec, width_multiple, min_width)))
    return [_batch(crops, ratios, idx, width, h, uint8) for idx, width in groups]


def _batch(crops: list[np.ndarray], ratios: list[float], idx: list[int], width: int, h: int, uint8: bool) -> RecBatch:
    if uint8:
        tensor = np.zeros((len(idx), h, width, 3), dtype=np.uint8)
        widths = np.zeros((len(idx), 1), dtype=np.int64)
    else:
        tensor = np.zeros((len(idx), 3, h, width), dtype=np.float32)
    for row, i in enumerate(idx):
        rw = max(1, min(width, int(math.ceil(h * ratios[i]))))
        resized = cv2.resize(crops[i], (rw, h), interpolation=cv2.INTER_LINEAR)
        if uint8:
            tensor[row, :, :rw] = resized
            widths[row, 0] = rw
        else:
            tensor[row, :, :, :rw] = normalize_to_chw(resized, REC_NORM)
    return RecBatch(indices=idx, tensor=tensor, widths=widths if uint8 else None)


def ctc_decode(probs: np.ndarray, charset: tuple[str, ...]) -> list[tuple[str, float]]:
    """Greedy CTC decoding of (N, T, C) softmax outputs.

    Class 0 is the blank and class i is charset[i - 1]. Repeated classes collapse, blanks drop.
    The confidence is the mean of the per-step maximum probability over the kept steps
    (0.0 for an empty result).
    """
    if probs.ndim != 3:
        raise ValueError(f"expected (N, T, C) probabilities, got shape {probs.shape}")
    if probs.shape[2] != len(charset) + 1:
        raise ValueError(
            f"model has {probs.shape[2]} classes but the dictionary gives {len(charset) + 1} (blank + characters + space)"
        )
    idx = probs.argmax(axis=2)
    best = np.take_along_axis(probs, idx[:, :, None], axis=2)[:, :, 0]
    return ctc_greedy(idx, best, charset)


def ctc_greedy(idx: np.ndarray, best: np.ndarray, charset: tuple[str, ...]) -> list[tuple[str, float]]:
    """Greedy CTC decoding from the best class per step (N, T) and its probability (N, T),
    as the model's CTC head returns them."""
    idx = np.asarray(idx)
    if idx.size and (idx.max() > len(charset) or idx.min() < 0):
        raise ValueError(f"class index {int(idx.max())} is outside the dictionary of {len(charset)} + blank")
    keep = idx != 0
    keep[:, 1:] &= idx[:, 1:] != idx[:, :-1]
    out = []
    for row in range(idx.shape[0]):
        k = keep[row]
        chars = idx[row][k]
        text = "".join(charset[c - 1] for c in chars.tolist())
        conf = float(best[row][k].mean()) if chars.size else 0.0
        out.append((text, conf))
    return out
