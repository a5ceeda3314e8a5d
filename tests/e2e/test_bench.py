"""The benchmark's own parts work, so `make bench` does not rot between runs.

These check behaviour (outputs, structure, what is measured), never speed: speed is measured by
`make bench`, not asserted here. The RapidOCR peer runs for real from its own venv
(`make test` builds .venv-rapid); PaddleOCR's wrapper needs the 1.6 GB .venv-ref and is
exercised by `make bench` only.
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
from bench.run import RAPID_VENV, stage_peer_models, start_peer
from export_scripts.fetch_models import MODELS, sha256_bytes
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
    assert models[0] == "ppocrv6_small_det" and models[1:] == ["ppocrv6_small_rec"]
    (_, rec_inputs, rec_outputs) = calls["a"][1]
    assert rec_outputs == ["ctc_argmax", "ctc_max_prob"]  # the service's own request, replayed as is
    (tensor,) = rec_inputs.values()
    assert tensor.shape[0] == 2 and tensor.dtype == np.float32
