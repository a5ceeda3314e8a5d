"""Text detection: image -> input tensor, probability map -> text boxes (DB post-processing).

Pure functions on numpy arrays; defaults come from the model's spec, per-request overrides are
passed in. Boxes are float32 arrays of shape (4, 2), clockwise from top-left, in original image
pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pyclipper
from shapely.geometry import Polygon

from ..model_spec import DetSpec, Normalization


@dataclass(frozen=True)
class ResizePolicy:
    limit_side_len: int = 960  # the longest side is brought down to this
    min_side_len: int = 64  # smaller images are brought up so the short side is this
    max_side_limit: int = 4000  # hard cap on either side after resizing


@dataclass(frozen=True)
class DBParams:
    thresh: float
    box_thresh: float
    unclip_ratio: float
    max_candidates: int
    min_size: float = 3.0


@dataclass(frozen=True)
class DetInput:
    tensor: np.ndarray  # (1, 3, H', W') float32, or (1, H', W', 3) uint8 for a model with the uint8 head
    ratio_h: float  # H' / H
    ratio_w: float
    src_h: int
    src_w: int
    # the resized image's size inside the tensor: smaller than the tensor when it was padded onto a
    # canvas (the probability map beyond it is padding and is cropped off)
    valid_h: int = 0
    valid_w: int = 0


def resized_shape(h: int, w: int, policy: ResizePolicy) -> tuple[int, int]:
    """Both sides multiples of 32; large images are brought down to the limit, never up."""
    ratio = 1.0
    if max(h, w) > policy.limit_side_len:
        ratio = policy.limit_side_len / max(h, w)
    elif min(h, w) < policy.min_side_len:
        ratio = policy.min_side_len / min(h, w)
    if max(h, w) * ratio > policy.max_side_limit:
        ratio = policy.max_side_limit / max(h, w)
    rh = max(32, int(round(h * ratio / 32)) * 32)
    rw = max(32, int(round(w * ratio / 32)) * 32)
    return rh, rw


Canvas = tuple[int, int]  # (H, W), both multiples of 32


def fit_canvas(rh: int, rw: int, canvases: tuple[Canvas, ...]) -> tuple[Canvas, tuple[int, int]]:
    """The canvas a resized (rh, rw) image is padded onto, and the image's size on it.

    The smallest canvas (by area) that holds it; when none does, the one it fits best after
    scaling down (the largest scale), and the image scaled down into it, keeping its aspect
    ratio and multiples of 32. A GPU plans per input shape and Triton batches only equal
    shapes: this keeps detection's input shapes to the canvases, whatever the pages."""
    fits = [c for c in canvases if c[0] >= rh and c[1] >= rw]
    if fits:
        return min(fits, key=lambda c: (c[0] * c[1], c)), (rh, rw)
    canvas = max(canvases, key=lambda c: (min(c[0] / rh, c[1] / rw), -c[0] * c[1]))
    scale = min(canvas[0] / rh, canvas[1] / rw)
    nh = min(canvas[0], max(32, int(rh * scale) // 32 * 32))
    nw = min(canvas[1], max(32, int(rw * scale) // 32 * 32))
    return canvas, (nh, nw)


def pad_pixel(norm: Normalization) -> np.ndarray:
    """The uint8 pixel that normalises to (about) zero: what padding is, to the model, in float."""
    return np.clip(np.round(np.asarray(norm.mean, dtype=np.float64) / norm.scale), 0, 255).astype(np.uint8)


def norm_coeffs(norm: Normalization) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel float32 (mul, add) with (x*scale - mean) / std == x * mul + add: the arithmetic
    of ``normalize_to_chw`` and of the models' uint8 input head (export_scripts/input_head.py)."""
    mul = (norm.scale / np.asarray(norm.std, dtype=np.float32)).astype(np.float32)
    add = (-np.asarray(norm.mean, dtype=np.float32) / np.asarray(norm.std, dtype=np.float32)).astype(np.float32)
    return mul, add


def normalize_to_chw(img: np.ndarray, norm: Normalization) -> np.ndarray:
    """HxWx3 uint8 -> 3xHxW float32 ((x*scale - mean) / std), channel order kept as given (BGR)."""
    mul, add = norm_coeffs(norm)
    out = np.empty((3,) + img.shape[:2], dtype=np.float32)
    for c in range(3):
        np.multiply(img[:, :, c], mul[c], out=out[c], casting="unsafe")
        out[c] += add[c]
    return out


def preprocess(img: np.ndarray, spec: DetSpec, policy: ResizePolicy, uint8: bool = False,
               canvases: tuple[Canvas, ...] = ()) -> DetInput:
    """The resized image as the model's input: normalised float32 CHW, or (``uint8``) the resized
    pixels themselves for a model that normalises in its own input head (a quarter of the bytes).

    With ``canvases`` (shape buckets) the resized image is placed top-left on its canvas
    (``fit_canvas``), the rest filled with what normalises to zero."""
    h, w = img.shape[:2]
    rh, rw = resized_shape(h, w, policy)
    canvas = (rh, rw)
    if canvases:
        canvas, (rh, rw) = fit_canvas(rh, rw, canvases)
    resized = img if (rh, rw) == (h, w) else cv2.resize(img, (rw, rh), interpolation=cv2.INTER_LINEAR)
    if canvas != (rh, rw):
        placed = np.empty(canvas + (3,), dtype=np.uint8)
        placed[...] = pad_pixel(spec.norm)
        placed[:rh, :rw] = resized
        if uint8:
            tensor = placed[None]
        else:
            tensor = normalize_to_chw(placed, spec.norm)[None]
            tensor[:, :, rh:, :] = 0
            tensor[:, :, :, rw:] = 0
    else:
        tensor = np.ascontiguousarray(resized)[None] if uint8 else normalize_to_chw(resized, spec.norm)[None]
    return DetInput(tensor=tensor, ratio_h=rh / h, ratio_w=rw / w, src_h=h, src_w=w, valid_h=rh, valid_w=rw)


def db_params(spec: DetSpec, thresh=None, box_thresh=None, unclip_ratio=None, max_candidates=None) -> DBParams:
    return DBParams(
        thresh=spec.thresh if thresh is None else thresh,
        box_thresh=spec.box_thresh if box_thresh is None else box_thresh,
        unclip_ratio=spec.unclip_ratio if unclip_ratio is None else unclip_ratio,
        max_candidates=spec.max_candidates if max_candidates is None else max_candidates,
    )


# --- DB post-processing -------------------------------------------------------------------


def order_points(pts: np.ndarray) -> np.ndarray:
    """Four points ordered top-left, top-right, bottom-right, bottom-left."""
    pts = pts[np.argsort(pts[:, 0], kind="stable")]
    left, right = pts[:2], pts[2:]
    tl, bl = (left[0], left[1]) if left[0, 1] <= left[1, 1] else (left[1], left[0])
    tr, br = (right[0], right[1]) if right[0, 1] <= right[1, 1] else (right[1], right[0])
    return np.array([tl, tr, br, bl], dtype=np.float32)


def mini_box(contour: np.ndarray) -> tuple[np.ndarray, float]:
    """Minimum-area rectangle of a contour and its shorter side."""
    rect = cv2.minAreaRect(contour.reshape(-1, 2).astype(np.float32))
    box = order_points(cv2.boxPoints(rect))
    return box, float(min(rect[1]))


def box_score(prob: np.ndarray, box: np.ndarray) -> float:
    """Mean probability inside the box polygon (PaddleOCR's "fast" score mode)."""
    h, w = prob.shape
    xmin = int(np.clip(np.floor(box[:, 0].min()), 0, w - 1))
    xmax = int(np.clip(np.ceil(box[:, 0].max()), 0, w - 1))
    ymin = int(np.clip(np.floor(box[:, 1].min()), 0, h - 1))
    ymax = int(np.clip(np.ceil(box[:, 1].max()), 0, h - 1))
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    shifted = (box - np.array([xmin, ymin], dtype=np.float32)).astype(np.int32)
    cv2.fillPoly(mask, [shifted.reshape(-1, 1, 2)], 1)
    return float(cv2.mean(prob[ymin:ymax + 1, xmin:xmax + 1], mask)[0])


def unclip(box: np.ndarray, ratio: float) -> np.ndarray | None:
    """Grow a box by area * ratio / perimeter (the DB paper's offset), with pyclipper."""
    poly = Polygon(box)
    if poly.length == 0:
        return None
    distance = poly.area * ratio / poly.length
    offset = pyclipper.PyclipperOffset()
    offset.AddPath([tuple(p) for p in box.tolist()], pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    grown = offset.Execute(distance)
    if len(grown) != 1:
        return None
    return np.asarray(grown[0], dtype=np.float32)


def boxes_from_prob(prob: np.ndarray, det_in: DetInput, params: DBParams) -> tuple[list[np.ndarray], list[float]]:
    """DB post-processing of one (H', W') probability map; boxes in source-image pixels."""
    if det_in.valid_h and (prob.shape[0] > det_in.valid_h or prob.shape[1] > det_in.valid_w):
        prob = prob[:det_in.valid_h, :det_in.valid_w]  # the canvas's padding
    bitmap = (prob > params.thresh).astype(np.uint8)
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes: list[np.ndarray] = []
    scores: list[float] = []
    sx = 1.0 / det_in.ratio_w
    sy = 1.0 / det_in.ratio_h
    for contour in contours[: params.max_candidates]:
        box, sside = mini_box(contour)
        if sside < params.min_size:
            continue
        score = box_score(prob, box)
        if score < params.box_thresh:
            continue
        grown = unclip(box, params.unclip_ratio)
        if grown is None:
            continue
        box, sside = mini_box(grown)
        if sside < params.min_size + 2:
            continue
        box[:, 0] = np.clip(np.round(box[:, 0] * sx), 0, det_in.src_w)
        box[:, 1] = np.clip(np.round(box[:, 1] * sy), 0, det_in.src_h)
        box = order_points(box)
        if np.linalg.norm(box[0] - box[1]) <= 3 or np.linalg.norm(box[0] - box[3]) <= 3:
            continue
        boxes.append(box)
        scores.append(score)
    return boxes, scores


def reading_order(boxes: list[np.ndarray]) -> list[int]:
    """Indices of boxes in reading order: lines top to bottom, boxes in a line left to right.

    A box joins the current line when its vertical centre lies within the line's vertical
    extent (so slightly tilted or differently sized boxes on one line stay together).
    """
    if not boxes:
        return []
    tops = np.array([b[:, 1].min() for b in boxes])
    bottoms = np.array([b[:, 1].max() for b in boxes])
    centres = (tops + bottoms) / 2
    lefts = np.array([b[:, 0].min() for b in boxes])
    order = np.lexsort((lefts, centres))
    lines: list[list[int]] = []
    for i in order:
        if lines:
            members = lines[-1]
            band_top = float(np.mean(tops[members]))
            band_bottom = float(np.mean(bottoms[members]))
            if band_top <= centres[i] <= band_bottom:
                members.append(int(i))
                continue
        lines.append([int(i)])
    return [i for line in lines for i in sorted(line, key=lambda j: lefts[j])]
