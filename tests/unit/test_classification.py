"""The optional text-line orientation stage: its threshold (OCR_CLS_THRESH), and the errors when
its model is missing or is not a classifier. In-process, on the real models."""

from __future__ import annotations

import numpy as np
import pytest

from preprocess_service.backends import create_backend
from preprocess_service.errors import InvalidRequest
from preprocess_service.model_spec import ClsSpec, load_spec
from preprocess_service.options import RequestOptions
from preprocess_service.pipeline import Pipeline
from preprocess_service.settings import Settings
from preprocess_service.stages import classification
from tests.conftest import run
from tests.helpers import render_lines, to_bgr

LINES = ["Upside down text line", "Second line here 42"]


@pytest.fixture(scope="module")
def cls_spec(repository) -> ClsSpec:
    spec = load_spec(repository, "ppocr_textline_cls")
    assert isinstance(spec, ClsSpec)
    return spec


def test_a_crop_is_turned_only_at_or_over_the_threshold(cls_spec):
    upside = next(i for i, label in enumerate(cls_spec.labels) if "180" in label)
    upright = 1 - upside
    crops = [np.arange(24, dtype=np.uint8).reshape(2, 4, 3).copy() for _ in range(3)]
    originals = [c.copy() for c in crops]
    probs = np.zeros((3, 2), dtype=np.float32)
    probs[0, upside], probs[0, upright] = 0.85, 0.15  # upside down, but below a 0.9 threshold
    probs[1, upside], probs[1, upright] = 0.95, 0.05  # upside down, over it
    probs[2, upright], probs[2, upside] = 0.99, 0.01  # upright
    turned = classification.apply(crops, probs, cls_spec, thresh=0.9)
    assert turned == [False, True, False]
    assert np.array_equal(crops[0], originals[0]) and np.array_equal(crops[2], originals[2])
    assert np.array_equal(crops[1], originals[1][::-1, ::-1])  # turned by 180 degrees
    assert classification.apply([c.copy() for c in originals], probs, cls_spec, thresh=0.8) == [True, True, False]


def _pipeline(**settings) -> Pipeline:
    s = Settings(api_tokens="unused-in-process", **settings)  # type: ignore[arg-type]
    return run(Pipeline.create(s, create_backend(s)))


def test_the_threshold_setting_reaches_the_pipeline(repository):
    """OCR_CLS_THRESH=1.0 (no crop is ever that sure): nothing is turned and the upside-down page
    reads wrong; the default threshold turns the lines and the page reads right."""
    page = to_bgr(render_lines(LINES, size=30).rotate(180))
    opts = RequestOptions(use_textline_orientation=True)
    default = run(_pipeline().read(page, opts))
    strict = run(_pipeline(cls_thresh=1.0).read(page, opts))
    assert default.used_cls and strict.used_cls
    assert sorted(ln.text for ln in default.lines) == sorted(LINES)
    assert sorted(ln.text for ln in strict.lines) != sorted(LINES)


def test_a_classifier_that_is_not_one_is_refused_at_start(repository):
    with pytest.raises(ValueError, match="is not a classification model"):
        _pipeline(cls_model="ppocrv6_small_det")


def test_a_set_with_orientation_on_and_no_classifier_is_refused_at_start(repository, tmp_path):
    """PP-OCRv5 mobile runs the classifier by default: without its folder the service must not
    start and silently skip the stage."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for folder in ("ppocrv5_mobile_det", "ppocrv5_mobile_rec"):
        (repo / folder).symlink_to(repository / folder)
    with pytest.raises(ValueError, match="no classifier model is available"):
        _pipeline(model_set="ppocrv5_mobile", model_repository=repo)
    pipe = _pipeline(model_set="ppocrv6_small", model_repository=_without_cls(repository, tmp_path))
    assert pipe.cls is None  # a set that does not need it starts without it ...
    page = to_bgr(render_lines(LINES, size=30))
    assert run(pipe.read(page, RequestOptions())).used_cls is False
    with pytest.raises(InvalidRequest, match="needs a classifier model"):  # ... and a request asking for it is a 422
        run(pipe.read(page, RequestOptions(use_textline_orientation=True)))


def _without_cls(repository, tmp_path):
    repo = tmp_path / "repo-float"
    repo.mkdir()
    for folder in ("ppocrv6_small_det", "ppocrv6_small_rec"):
        (repo / folder).symlink_to(repository / folder)
    return repo
