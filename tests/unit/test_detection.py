"""Detection stage: resize policy, normalisation, DB post-processing, reading order."""

from __future__ import annotations

import numpy as np
import pytest

from preprocess_service.model_spec import DetSpec, Normalization
from preprocess_service.stages import detection as det

SPEC = DetSpec(
    name="t", folder=None, model_name="t",  # type: ignore[arg-type]
    norm=Normalization(scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    thresh=0.3, box_thresh=0.6, unclip_ratio=1.5, max_candidates=1000,
)
POLICY = det.ResizePolicy(limit_side_len=960, min_side_len=64, max_side_limit=4000)


@pytest.mark.parametrize(
    "h,w,expected",
    [
        (480, 640, (480, 640)),  # already multiples of 32 and under the limit: untouched
        (500, 700, (512, 704)),  # rounded to the nearest multiple of 32, no scaling
        (1920, 1080, (960, 544)),  # brought down so the long side is the limit
        (28, 73, (64, 160)),  # tiny: brought up so the short side is 64
        (4800, 3600, (960, 704)),
        (10, 5000, (32, 960)),  # never below 32
    ],
)
def test_resized_shape(h, w, expected):
    rh, rw = det.resized_shape(h, w, POLICY)
    assert (rh, rw) == expected
    assert rh % 32 == 0 and rw % 32 == 0


def test_large_images_are_never_scaled_up():
    for h, w in [(700, 900), (960, 960), (2000, 3000)]:
        rh, rw = det.resized_shape(h, w, POLICY)
        assert max(rh, rw) <= max(h, w) + 16


def test_normalize_matches_formula():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = det.normalize_to_chw(img, SPEC.norm)
    expected = ((img.astype(np.float32) / 255 - np.array(SPEC.norm.mean)) / np.array(SPEC.norm.std)).transpose(2, 0, 1)
    assert out.shape == (3, 5, 7) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_preprocess_records_ratios():
    img = np.zeros((1000, 500, 3), dtype=np.uint8)
    d = det.preprocess(img, SPEC, POLICY)
    assert d.tensor.shape == (1, 3, 960, 480)
    assert d.ratio_h == pytest.approx(0.96) and d.ratio_w == pytest.approx(0.96)


def _prob_map(h, w, rects, value=0.95):
    prob = np.zeros((h, w), dtype=np.float32)
    for x0, y0, x1, y1 in rects:
        prob[y0:y1, x0:x1] = value
    return prob


def _identity_input(h, w):
    return det.DetInput(tensor=np.zeros((1, 3, h, w), np.float32), ratio_h=1.0, ratio_w=1.0, src_h=h, src_w=w)


def test_db_finds_each_region_and_unclips_it():
    prob = _prob_map(200, 400, [(50, 40, 250, 60), (60, 120, 300, 150)])
    boxes, scores = det.boxes_from_prob(prob, _identity_input(200, 400), det.db_params(SPEC))
    assert len(boxes) == 2
    boxes = sorted(boxes, key=lambda b: b[:, 1].min())
    (x0, y0), (x1, y1) = boxes[0].min(axis=0), boxes[0].max(axis=0)
    # the region is 200x20; unclip grows it by area * 1.5 / perimeter = 13.6 px on each side
    grow = 200 * 20 * 1.5 / (2 * (200 + 20))
    assert abs(x0 - (50 - grow)) <= 2 and abs(x1 - (249 + grow)) <= 2
    assert abs(y0 - (40 - grow)) <= 2 and abs(y1 - (59 + grow)) <= 2
    assert all(s > 0.9 for s in scores)


def test_db_box_threshold_drops_faint_regions():
    prob = _prob_map(100, 300, [(20, 20, 200, 40)], value=0.5)  # over thresh 0.3, under box_thresh 0.6
    boxes, _ = det.boxes_from_prob(prob, _identity_input(100, 300), det.db_params(SPEC))
    assert boxes == []
    boxes, _ = det.boxes_from_prob(prob, _identity_input(100, 300), det.db_params(SPEC, box_thresh=0.4))
    assert len(boxes) == 1


def test_db_drops_tiny_specks_and_honours_max_candidates():
    prob = _prob_map(100, 300, [(10, 10, 12, 12)] + [(20 + 40 * i, 50, 50 + 40 * i, 70) for i in range(5)])
    boxes, _ = det.boxes_from_prob(prob, _identity_input(100, 300), det.db_params(SPEC))
    assert len(boxes) == 5  # the 2x2 speck is gone
    boxes, _ = det.boxes_from_prob(prob, _identity_input(100, 300), det.db_params(SPEC, max_candidates=2))
    assert len(boxes) <= 2


def test_db_scales_boxes_back_to_source_pixels():
    prob = _prob_map(100, 200, [(20, 20, 120, 40)])
    d = det.DetInput(tensor=np.zeros((1, 3, 100, 200), np.float32), ratio_h=0.5, ratio_w=0.5, src_h=200, src_w=400)
    boxes, _ = det.boxes_from_prob(prob, d, det.db_params(SPEC))
    (x0, y0), (x1, y1) = boxes[0].min(axis=0), boxes[0].max(axis=0)
    grow = 100 * 20 * 1.5 / (2 * (100 + 20))  # unclip in the half-size map
    # map coordinates are doubled back to source pixels
    assert abs(x0 - 2 * (20 - grow)) <= 3 and abs(x1 - 2 * (119 + grow)) <= 3
    assert abs(y0 - 2 * (20 - grow)) <= 3 and abs(y1 - 2 * (39 + grow)) <= 3


def test_db_rotated_region_gives_rotated_box():
    import cv2

    prob = np.zeros((300, 300), np.float32)
    pts = cv2.boxPoints(((150, 150), (200, 30), 30)).astype(np.int32)
    cv2.fillPoly(prob, [pts], 0.9)
    boxes, _ = det.boxes_from_prob(prob, _identity_input(300, 300), det.db_params(SPEC))
    assert len(boxes) == 1
    b = boxes[0]
    angle = np.degrees(np.arctan2(b[1, 1] - b[0, 1], b[1, 0] - b[0, 0]))
    assert 25 < angle < 35
    # ordered clockwise from top-left
    assert b[0, 0] < b[1, 0] and b[3, 1] > b[0, 1]


def test_order_points():
    pts = np.array([[10, 50], [100, 10], [110, 60], [0, 0]], dtype=np.float32)
    assert det.order_points(pts).tolist() == [[0, 0], [100, 10], [110, 60], [10, 50]]


def _box(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)


def test_reading_order_lines_then_left_to_right():
    boxes = [
        _box(300, 12, 400, 32),  # line 1, right (slightly lower)
        _box(10, 60, 100, 80),  # line 2, left
        _box(10, 10, 120, 30),  # line 1, left
        _box(150, 58, 260, 82),  # line 2, right (taller)
    ]
    assert det.reading_order(boxes) == [2, 0, 1, 3]


def test_reading_order_keeps_close_lines_apart():
    boxes = [_box(10, 0, 200, 20), _box(10, 22, 200, 42), _box(10, 44, 200, 64)]
    assert det.reading_order(list(reversed(boxes))) == [2, 1, 0]
