"""Crop geometry, recognition batching and CTC decoding (synthetic inputs)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from preprocess_service.model_spec import RecSpec
from preprocess_service.stages import crop, recognition

CHARSET = ("a", "b", "c", " ")  # classes: 0 blank, 1 a, 2 b, 3 c, 4 space
SPEC = RecSpec(name="t", folder=None, model_name="t", image_height=48, base_width=320, max_width=3200,  # type: ignore[arg-type]
               charset=CHARSET)


def test_axis_aligned_crop_is_the_region():
    img = np.random.default_rng(1).integers(0, 256, (100, 200, 3), dtype=np.uint8)
    box = np.array([[20, 30], [120, 30], [120, 60], [20, 60]], dtype=np.float32)
    out = crop.crop_box(img, box)
    assert out.shape == (30, 100, 3)
    np.testing.assert_allclose(out[2:-2, 2:-2].astype(int), img[32:58, 22:118].astype(int), atol=2)


def test_rotated_box_is_cut_upright():
    img = np.full((300, 300, 3), 255, np.uint8)
    rect = ((150, 150), (200, 40), 20)
    pts = cv2.boxPoints(rect).astype(np.int32)
    cv2.fillPoly(img, [pts], (0, 0, 0))
    from preprocess_service.stages.detection import order_points

    out = crop.crop_box(img, order_points(cv2.boxPoints(rect)))
    assert abs(out.shape[1] - 200) <= 2 and abs(out.shape[0] - 40) <= 2
    assert out[3:-3, 3:-3].mean() < 20  # the black bar fills the crop: it was cut straight


def test_tall_crop_is_turned_horizontal():
    img = np.zeros((300, 100, 3), np.uint8)
    box = np.array([[10, 10], [40, 10], [40, 210], [10, 210]], dtype=np.float32)
    out = crop.crop_box(img, box)
    assert out.shape[:2] == (30, 200)


def _probs(seq, n_classes=5, p=0.9):
    out = np.full((len(seq), n_classes), (1 - p) / (n_classes - 1), np.float32)
    for t, c in enumerate(seq):
        out[t, c] = p
    return out


def test_ctc_collapses_repeats_and_drops_blanks():
    probs = np.stack([
        _probs([1, 1, 0, 1, 2, 2, 0, 0, 3]),  # a a _ a b b _ _ c -> "aabc"
        _probs([0, 0, 0, 0, 0, 0, 0, 0, 0]),  # nothing
        _probs([1, 4, 2, 0, 0, 0, 0, 0, 0]),  # a space b
    ])
    out = recognition.ctc_decode(probs, CHARSET)
    assert [t for t, _ in out] == ["aabc", "", "a b"]
    assert out[0][1] == pytest.approx(0.9, abs=1e-6)
    assert out[1][1] == 0.0


def test_ctc_confidence_is_mean_of_kept_steps():
    probs = _probs([1, 0, 2])[None]
    probs[0, 0, 1] = 0.5  # "a" at 0.5
    probs[0, 2, 2] = 0.7  # "b" at 0.7
    (text, conf), = recognition.ctc_decode(probs, CHARSET)
    assert text == "ab" and conf == pytest.approx(0.6, abs=1e-6)


def test_ctc_refuses_a_dictionary_that_does_not_fit_the_model():
    with pytest.raises(ValueError, match="classes"):
        recognition.ctc_decode(np.zeros((1, 4, 7), np.float32), CHARSET)


def test_batches_sorted_by_aspect_ratio_and_padded_to_widest():
    crops = [np.full((48, w, 3), 255, np.uint8) for w in (480, 96, 960, 200)]
    batches = recognition.plan_batches(crops, SPEC, batch_size=2)
    assert [b.indices for b in batches] == [[1, 3], [0, 2]]
    assert batches[0].tensor.shape == (2, 3, 48, 320)  # at least the model's base width
    assert batches[1].tensor.shape == (2, 3, 48, 960)  # the widest crop of the batch
    t = batches[1].tensor
    assert np.all(t[0, :, :, :480] == pytest.approx(1.0))  # white -> +1 after (x/255-0.5)/0.5
    assert np.all(t[0, :, :, 480:] == 0.0)  # padding


def test_batch_width_is_capped():
    assert recognition.batch_width([1000.0], SPEC) == 3200


def test_greedy_from_indices_matches_softmax_decoding_and_checks_range():
    probs = np.stack([_probs([1, 1, 0, 2, 4, 3]), _probs([0, 3, 3, 3, 0, 1])])
    idx, best = probs.argmax(axis=2), probs.max(axis=2)
    assert recognition.ctc_greedy(idx, best, CHARSET) == recognition.ctc_decode(probs, CHARSET)
    with pytest.raises(ValueError, match="outside the dictionary"):
        recognition.ctc_greedy(np.array([[9]]), np.array([[0.5]]), CHARSET)


def test_width_multiple_rounds_batch_widths_up():
    assert recognition.batch_width([400 / 48], SPEC, multiple=320) == 640
    assert recognition.batch_width([1.0], SPEC, multiple=320) == 320
    assert recognition.batch_width([100.0], SPEC, multiple=320) == 3200


def test_min_width_lets_short_crops_skip_the_padding_to_the_base_width():
    assert recognition.batch_width([96 / 48], SPEC) == 320  # default: PaddleOCR's padding to 320
    assert recognition.batch_width([96 / 48], SPEC, min_width=0) == 96
    assert recognition.batch_width([97 / 48], SPEC, multiple=32, min_width=0) == 128
    crops = [np.full((48, w, 3), 255, np.uint8) for w in (60, 100)]
    (batch,) = recognition.plan_batches(crops, SPEC, batch_size=2, min_width=0)
    assert batch.tensor.shape == (2, 3, 48, 100)
