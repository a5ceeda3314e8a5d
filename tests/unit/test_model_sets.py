"""The other model sets (PP-OCRv6 tiny, PP-OCRv5 mobile + classifier), in-process on the real models."""

from __future__ import annotations

import pytest

from evaluation.scoring import PredLine, Rule, score_item
from preprocess_service.backends import create_backend
from preprocess_service.imaging import decode_image
from preprocess_service.options import RequestOptions
from preprocess_service.pipeline import Pipeline
from preprocess_service.settings import Settings
from tests.conftest import run
from tests.helpers import PHOTOTEST, render_lines, to_bgr


def _pipeline(model_set: str) -> Pipeline:
    settings = Settings(api_tokens="unused", model_set=model_set)
    pipe = run(Pipeline.create(settings, create_backend(settings)))
    run(pipe.warmup())
    return pipe


@pytest.mark.parametrize("model_set,max_cer", [("ppocrv6_tiny", 0.05), ("ppocrv5_mobile", 0.05)])
def test_model_set_reads_a_page(model_set, max_cer, eval_dir):
    pipe = _pipeline(model_set)
    img = decode_image((eval_dir / "tess_phototest.png").read_bytes(), 10**8)
    result = run(pipe.read(img, RequestOptions()))
    score = score_item([PredLine(ln.text) for ln in result.lines], PHOTOTEST, Rule())
    assert score.cer <= max_cer, [ln.text for ln in result.lines]
    assert result.used_cls is (model_set == "ppocrv5_mobile")


def test_v5_classifier_turns_upside_down_lines():
    pipe = _pipeline("ppocrv5_mobile")
    lines = ["Quarterly report 2026", "Shipping address below"]
    img = to_bgr(render_lines(lines, size=30).rotate(180))
    result = run(pipe.read(img, RequestOptions()))
    assert sorted(ln.text for ln in result.lines) == sorted(lines)
    without = run(pipe.read(img, RequestOptions(use_textline_orientation=False)))
    assert sorted(ln.text for ln in without.lines) != sorted(lines)
