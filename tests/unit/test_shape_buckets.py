"""Shape buckets: detection canvases, recognition width buckets, the settings that hold them, and
the count of shapes each model really receives over the evaluation set (real models, in-process)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from pydantic import ValidationError

from bench import shapes as shape_bench
from preprocess_service.model_spec import load_spec
from preprocess_service.settings import Settings
from preprocess_service.stages import detection, recognition

CANVASES = ((320, 320), (320, 960), (640, 960), (960, 960))


def _settings(**kw) -> Settings:
    return Settings(api_tokens="unit-test-token-0123456789", **kw)  # type: ignore[arg-type]


def test_fit_canvas_takes_the_smallest_that_holds_the_page():
    assert detection.fit_canvas(96, 320, CANVASES) == ((320, 320), (96, 320))
    assert detection.fit_canvas(64, 832, CANVASES) == ((320, 960), (64, 832))
    assert detection.fit_canvas(544, 960, CANVASES) == ((640, 960), (544, 960))
    assert detection.fit_canvas(960, 704, CANVASES) == ((960, 960), (960, 704))


def test_fit_canvas_scales_what_fits_none_into_the_best_one():
    canvas, (h, w) = detection.fit_canvas(1600, 1216, CANVASES)  # a request's det_limit_side_len=1600
    assert canvas == (960, 960) and h <= 960 and w <= 960 and h % 32 == 0 and w % 32 == 0
    assert abs(h / w - 1600 / 1216) < 0.06
    canvas, (h, w) = detection.fit_canvas(128, 4000, CANVASES)  # a long thin strip
    assert canvas in CANVASES and h <= canvas[0] and w <= canvas[1]


def test_every_resized_page_lands_on_a_canvas():
    rng = random.Random(3)
    policy = detection.ResizePolicy()
    for _ in range(500):
        h, w = rng.randint(8, 9000), rng.randint(8, 9000)
        canvas, (rh, rw) = detection.fit_canvas(*detection.resized_shape(h, w, policy), CANVASES)
        assert canvas in CANVASES and 32 <= rh <= canvas[0] and 32 <= rw <= canvas[1]


@pytest.mark.parametrize("uint8", [True, False])
def test_detection_padding_is_what_normalises_to_zero(repository, uint8):
    spec = load_spec(repository, "ppocrv6_small_det")
    img = np.full((100, 300, 3), 255, np.uint8)
    det_in = detection.preprocess(img, spec, detection.ResizePolicy(), uint8, CANVASES)
    assert (det_in.valid_h, det_in.valid_w) == (96, 288)
    if uint8:
        assert det_in.tensor.shape == (1, 320, 320, 3)
        pad = det_in.tensor[0, 200, 300].astype(np.float32)
        mul, add = detection.norm_coeffs(spec.norm)
        assert np.all(np.abs(pad * mul + add) < 0.02)  # the pixel the model's head turns into ~0
        assert np.all(det_in.tensor[0, :96, :288] == 255)
    else:
        assert det_in.tensor.shape == (1, 3, 320, 320)
        assert np.all(det_in.tensor[0, :, 96:, :] == 0) and np.all(det_in.tensor[0, :, :, 288:] == 0)


def test_width_buckets_fix_every_batch_width(repository):
    spec = load_spec(repository, "ppocrv6_small_rec")
    widths = (320, 640, 1280, 3200)
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (32, int(w), 3), dtype=np.uint8) for w in (20, 150, 300, 500, 900, 1500, 4000)]
    batches = recognition.plan_batches(crops, spec, 2, uint8=True, width_buckets=widths)
    assert sorted(i for b in batches for i in b.indices) == list(range(len(crops)))
    for b in batches:
        width = b.tensor.shape[2]
        assert width in widths
        need = [max(320, int(np.ceil(48 * crops[i].shape[1] / 32))) for i in b.indices]
        assert all(recognition.width_bucket(n, widths) == width for n in need)  # each crop in its own bucket
        assert b.widths is not None and int(b.widths.max()) <= width
    # the widest crop (4000 px at 32 high -> 6000 at 48) is squeezed into the last bucket
    assert any(b.tensor.shape[2] == 3200 and 6 in b.indices for b in batches)


@pytest.mark.parametrize("env, message", [
    ({"backend": "triton", "shape_buckets": "off"}, "Triton batches only equal shapes"),
    ({"ort_providers": ["CUDAExecutionProvider"], "model_set": "ppocrv6_small_int8"}, "quantised for CPUs"),
    ({"det_canvases": ["320x300"]}, "multiples of 32"),
    ({"det_canvases": ["big"]}, "HxW"),
    ({"det_canvases": []}, "at least one"),
    ({"rec_batch_sizes": [0, 4]}, ">= 1"),
])
def test_bucket_settings_refuse_what_cannot_work(env, message):
    with pytest.raises(ValidationError, match=message):
        _settings(**env)


def test_bucket_defaults_follow_the_device():
    assert not _settings().buckets_on  # CPU, embedded: padding costs compute (docs/artifacts/batcher.json)
    assert _settings(backend="triton").buckets_on
    gpu = _settings(ort_providers=["CUDAExecutionProvider"], model_set="ppocrv6_small")
    assert gpu.buckets_on and gpu.warmup_every_bucket
    assert _settings(shape_buckets="on").buckets_on and not _settings(shape_buckets="on").warmup_every_bucket
    env = _settings(det_canvases="320x320, 960x960", rec_batch_sizes="16,1,4")  # as the environment gives them
    assert env.canvases == ((320, 320), (960, 960)) and env.rec_batch_sizes == [1, 4, 16]


def test_the_models_see_few_shapes_and_read_as_well():
    """The targets: over the evaluation set, the benchmark's and held-out labels and pages of random
    sizes, detection sees at most 8 input shapes and recognition at most 16 with buckets on, every
    one of them among those reported at start-up; accuracy within the rule of buckets off."""
    items = shape_bench.dataset()
    row = shape_bench.compare("ppocrv6_small_int8", items)
    off, on = row["off"]["distinct_shapes"], row["on"]["distinct_shapes"]
    assert off["det"] > 8 and off["rec"] > 16, off  # what it fixes: shapes follow the pages
    assert on["det"] <= 8 and on["rec"] <= 16, on
    assert row["cer_delta"] <= shape_bench.MAX_CER_DELTA, row
    assert row["mean_image_cer_delta"] <= shape_bench.MAX_MEAN_CER_DELTA, row
    assert row["on"]["labels_exact"], row
