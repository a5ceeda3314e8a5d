"""The benchmark's own parts work, so `make bench` does not rot between runs.

These check behaviour (outputs, structure, what is measured), never speed: speed is measured by
`make bench`, not asserted here. The RapidOCR and faster-paddle peers run for real from their own
venvs (`make test` builds .venv-rapid and .venv-fastpaddle); PaddleOCR's wrapper needs the 1.6 GB
.venv-ref and is exercised by `make bench` only.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import httpx
import pytest

from bench import dataset
from bench.peers import fastpaddle_models
from bench.run import FASTPADDLE, FASTPADDLE_VENV, RAPID_VENV, SYSTEMS, stage_peer_models, start_peer
from export_scripts.fetch_models import MODELS, published_model_bytes, sha256_bytes
from tests.conftest import ROOT


def test_labels_are_rendered_at_several_sizes(eval_dir):
    items = dataset.load(eval_dir)
    labels = [it for it in items if it.name.startswith("label_")]
    sizes = sorted(it.size[0] * it.size[1] for it in labels)
    assert len(labels) == len(dataset.LABELS) and sizes[-1] > 50 * sizes[0]
    assert len(items) == len(labels) + len(json.loads((eval_dir / "manifest.json").read_text()))


def test_peers_get_the_published_model_files(tmp_path, repository):
    staged = stage_peer_models(tmp_path)
    for name in ("ppocrv6_small_det", "ppocrv6_small_rec"):
        data = (staged[name] / "inference.onnx").read_bytes()
        assert sha256_bytes(data) == MODELS[name].onnx_sha256  # as published: no CTC head
    keys = staged["keys"].read_text(encoding="utf-8").splitlines()
    assert len(keys) == 18708  # the dictionary of inference.yml; blank and space are added by the peer


def test_rapidocr_peer_reads_a_label_with_the_same_models(tmp_path, eval_dir):
    if not (RAPID_VENV / "bin" / "python").exists():
        pytest.fail(".venv-rapid missing: `make test` builds it (make rapidocr-venv)")
    item = next(it for it in dataset.load(eval_dir, labels=True) if it.name == "label_m.png")
    target = start_peer(tmp_path, "rapidocr", stage_peer_models(tmp_path))
    try:
        r = httpx.post(target.url, json={"image": base64.b64encode(item.data).decode()}, timeout=120)
        assert r.status_code == 200
        texts = [ln["text"] for ln in r.json()["lines"]]
        assert texts == item.gt_lines
    finally:
        target.stop()


def _need_fastpaddle_venv():
    if not (FASTPADDLE_VENV / "bin" / "python").exists():
        pytest.fail(".venv-fastpaddle missing: `make test` builds it (make fastpaddle-venv)")


@pytest.mark.parametrize("size", ["small", "tiny"])
def test_fastpaddle_peer_reads_a_label_with_its_own_models(tmp_path, eval_dir, size):
    _need_fastpaddle_venv()
    item = next(it for it in dataset.load(eval_dir, labels=True) if it.name == "label_m.png")
    target = start_peer(tmp_path, f"fastpaddle-{size}", {})  # no model files: it runs those in its wheel
    try:
        r = httpx.post(target.url, json={"image": base64.b64encode(item.data).decode()}, timeout=120)
        assert r.status_code == 200
        lines = r.json()["lines"]
        assert [ln["text"] for ln in lines] == item.gt_lines
        for ln in lines:  # axis-aligned boxes as four corners, inside the image
            (x1, y1), (x2, y2) = ln["box"][0], ln["box"][2]
            assert ln["box"] == [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]
            assert 0 <= x1 < x2 <= item.size[0] and 0 <= y1 < y2 <= item.size[1]
            assert 0.5 < ln["confidence"] <= 1
        bad = httpx.post(target.url, json={"image": base64.b64encode(b"not an image").decode()}, timeout=30)
        assert bad.status_code == 400
        info = target.info
        assert info["engine"] == "faster-paddle" and info["version"] == fastpaddle_models.VERSION
        assert info["config"]["det_max_side"] == 1600 and info["model_size"] == size  # its own defaults
        assert info["same_files"] is False and info["same_weights"] is True
        assert set(info["wheel_sha256"]) == {f"ppocrv6_{size}_det", f"ppocrv6_{size}_rec"}
    finally:
        target.stop()


def test_fastpaddle_systems_are_registered_at_its_defaults_and_at_our_detection_limit():
    from preprocess_service.settings import Settings

    assert set(FASTPADDLE) <= set(SYSTEMS)
    ours = Settings(api_tokens=["x"]).det_limit_side_len
    assert FASTPADDLE == {"fastpaddle-small": ("small", None), "fastpaddle-tiny": ("tiny", None),
                          "fastpaddle-small-960": ("small", ours), "fastpaddle-tiny-960": ("tiny", ours)}


def test_fastpaddle_wheel_models_are_our_weights_in_another_export(repository):
    """What the faster-paddle systems' info says about their models, checked on the installed wheel:
    other files (other sha256) that compute what ours compute."""
    import numpy as np
    import onnxruntime as ort

    _need_fastpaddle_venv()
    embedded = fastpaddle_models.embedded_models(fastpaddle_models.extension_module(FASTPADDLE_VENV))
    assert set(embedded) == set(fastpaddle_models.WHEEL_SHA256)  # all four found, each as pinned
    rng = np.random.default_rng(0)
    for name, blob in embedded.items():
        ours = published_model_bytes(name, ROOT / ".cache" / "wheels")
        assert sha256_bytes(ours) == MODELS[name].onnx_sha256 != fastpaddle_models.WHEEL_SHA256[name]
        x = rng.uniform(-1, 1, (1, 3, 160, 224) if name.endswith("det") else (2, 3, 48, 160)).astype(np.float32)
        theirs_out = ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        ours_out = ort.InferenceSession(ours, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        assert theirs_out.shape == ours_out.shape
        np.testing.assert_allclose(theirs_out, ours_out, atol=1e-5)
        if name.endswith("rec"):
            assert (theirs_out.argmax(-1) == ours_out.argmax(-1)).all()


def test_bench_run_measures_fastpaddle_end_to_end(tmp_path, eval_dir):
    _need_fastpaddle_venv()
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCR_")}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--eval-dir", str(eval_dir), "--systems", "fastpaddle-small",
         "--concurrency", "1", "--images", "tjs_simple.png", "pp_word_10.png", "--soak", "0", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    fp = json.loads(out.read_text())["systems"]["fastpaddle-small"]
    lv = fp["levels"]["1"]
    assert lv["ok"] == lv["requests"] == 2 and 0 < lv["p50_ms"] <= lv["p95_ms"]
    assert set(fp["per_image"]) == {"tjs_simple.png", "pp_word_10.png"}
    assert 0 <= fp["cer"] <= 0.1  # both are read (exactly, with 1.0.4)
    assert fp["rss_peak_mb"] > 50 and fp["service"]["model_size"] == "small"
    assert "| fastpaddle-small |" in proc.stdout


def test_bench_run_measures_ours_and_the_floor_end_to_end(tmp_path, eval_dir):
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCR_")}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--eval-dir", str(eval_dir), "--systems", "ours", "floor",
         "--concurrency", "1", "2", "--images", "label_s.png", "label_m.png", "tjs_simple.png",
         "--soak", "30", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    res = json.loads(out.read_text())
    ours, floor = res["systems"]["ours"], res["systems"]["floor"]
    for sys_ in (ours, floor):
        for c in ("1", "2"):
            lv = sys_["levels"][c]
            assert lv["ok"] == lv["requests"] == 3
            assert 0 < lv["p50_ms"] <= lv["p95_ms"]
        assert sys_["rss_peak_mb"] > 50
    assert ours["cer"] == 0.0  # the labels and tjs_simple are read exactly
    assert set(floor["per_image_ms"]) == {"label_s.png", "label_m.png", "tjs_simple.png"}
    assert res["soak"]["requests"] == 30 and res["soak"]["rss_end_mb"] > 50
    assert any("latency c=1: ours / floor" in t for t in res["targets"])
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| ours |" in proc.stdout and "| floor |" in proc.stdout


def test_floor_replays_exactly_the_pipelines_model_calls(repository):
    import asyncio

    import numpy as np

    from bench.floor import record
    from preprocess_service.settings import Settings
    from tests.helpers import render_lines, to_bgr

    img = to_bgr(render_lines(["FLOOR 42", "replay"]))
    settings = Settings(api_tokens=["x"])
    backend, calls = asyncio.run(record(settings, {"a": img}))
    models = [m for m, _, _ in calls["a"]]
    assert models[0] == settings.model_names["det"] and models[1:] == [settings.model_names["rec"]]
    (_, rec_inputs, rec_outputs) = calls["a"][1]
    assert rec_outputs == ["ctc_argmax", "ctc_max_prob"]  # the service's own request, replayed as is
    assert list(rec_inputs) == ["x", "valid_width"]  # the uint8 input head (export_scripts/input_head.py)
    tensor = rec_inputs["x"]
    assert tensor.shape[0] == 2 and tensor.dtype == np.uint8 and tensor.shape[3] == 3


def test_pairs_parses_variants_and_refuses_what_it_cannot_run():
    from bench.pairs import parse_variant

    assert parse_variant("a=onnxruntime") == ("a", "onnxruntime", {})
    assert parse_variant("b=triton,OCR_REC_BATCH_SIZE=4,OCR_X=a=b") == ("b", "triton", {"OCR_REC_BATCH_SIZE": "4",
                                                                                       "OCR_X": "a=b"})
    import argparse

    for bad in ("onnxruntime", "a=openvino2", "a=onnxruntime,REC=1", "a=onnxruntime,OCR_X"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_variant(bad)


def test_pairs_runs_variants_interleaved_and_writes_medians(tmp_path, eval_dir):
    """Two real services, one repeat each on one rendered label: the artifact has every run, the
    medians, the ratios to the first and the command; a setting reaches the service (the
    recognition score threshold at 1.0 drops every line: CER 1)."""
    from bench import pairs

    out = tmp_path / "pairs.json"
    assert pairs.main(["--repeats", "1", "--images", "label_m.png", "--eval-dir", str(eval_dir), "--out", str(out),
                       "default=onnxruntime", "drop all=onnxruntime,OCR_REC_SCORE_THRESH=1.0"]) == 0
    doc = json.loads(out.read_text())
    assert doc["command"].startswith("python -m bench.pairs --repeats 1") and doc["images"] == 1
    a, b = doc["variants"]["default"], doc["variants"]["drop all"]
    assert len(a["images_per_s"]) == len(b["images_per_s"]) == 1 and a["images_per_s"][0] > 0
    assert a["ratio_to_first"] == 1.0 and b["settings"] == {"OCR_REC_SCORE_THRESH": "1.0"}
    assert a["answered_ok"] == b["answered_ok"] == ["1/1"] and a["service"]["backend"] == "onnxruntime"
    assert a["cer"] == 0.0 and b["cer"] > 0.5  # (a line read with confidence exactly 1.0 would stay)


def test_pairs_summary_is_medians_and_ratios_to_the_first():
    from bench.pairs import summarise

    got = summarise({"a": [2.0, 4.0, 3.0], "b": [6.0, 1.0, 4.5], "c": [1.5]})
    assert got == {"a": {"median": 3.0, "ratio_to_first": 1.0}, "b": {"median": 4.5, "ratio_to_first": 1.5},
                   "c": {"median": 1.5, "ratio_to_first": 0.5}}

