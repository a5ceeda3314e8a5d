"""The GPU benchmark's pieces on a machine without a GPU: the staging into loads and their
assembly (hostile: a corrupt or missing part), and the runner's dry run on the CPU provider over
three images, through bench/gpu_run.sh as the GPU machine runs it, so that neither can rot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from bench import gpu, gpu_stage
from bench.dataset import load
from evaluation import EVAL_DIR

ROOT = gpu.PROJECT_ROOT


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-stage")
    # small loads (8 MiB): the models and the dataset are cut into parts, as onnxruntime-gpu is
    r = subprocess.run([sys.executable, "-m", "bench.gpu_stage", "--out", str(out), "--no-download", "--load-mib", "8"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def test_stage_cuts_files_into_loads_under_the_limit(stage):
    loads = sorted(stage.glob("load-*"))
    assert len(loads) >= 5
    for folder in loads:
        assert sum(p.stat().st_size for p in folder.iterdir() if p.name != "manifest.json") <= 8 * 2**20
    manifest = json.loads((loads[0] / "manifest.json").read_text())
    assert set(manifest["files"]) >= {"dataset.pkl", "models/ppocrv6_small_rec_fp16/1/model.onnx",
                                      "models/ppocrv6_small_det/1/model.onnx"}
    assert len(manifest["files"]["models/ppocrv6_small_rec/1/model.onnx"]["parts"]) >= 3
    calls = (stage / "calls.txt").read_text().splitlines()
    assert calls[-1].endswith('command="bash bench/gpu_run.sh" timeout_s=420')


def test_the_dataset_is_the_benchmarks_own(tmp_path):
    import pickle

    gpu.prepare(tmp_path / "d.pkl")
    items = pickle.loads((tmp_path / "d.pkl").read_bytes())
    expected = load(EVAL_DIR)
    assert [it["name"] for it in items] == [it.name for it in expected]
    assert all(a["data"] == b.data and a["gt"] == b.gt_lines for a, b in zip(items, expected, strict=True))


def test_assembly_refuses_a_corrupt_or_missing_part(stage, tmp_path):
    copy = tmp_path / "stage"
    shutil.copytree(stage, copy, ignore=shutil.ignore_patterns("work", "assembled"))
    part = next(p for p in sorted((copy / "load-1").iterdir()) if p.name != "manifest.json")
    data = bytearray(part.read_bytes())
    data[100] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(SystemExit, match="does not match its sha256"):
        gpu_stage.assemble(copy, copy / "assembled")
    shutil.rmtree(copy / "load-2")
    part.unlink()
    with pytest.raises(SystemExit, match="not arrived yet"):
        gpu_stage.assemble(copy, copy / "assembled")


def test_the_runner_dry_run_writes_every_step(stage, tmp_path):
    """bench/gpu_run.sh as on the GPU machine (assemble, then bench.gpu), on the CPU provider."""
    env = {**os.environ, "GPU_STAGE": str(stage), "GPU_VENV": str(ROOT / ".venv"), "OUT": str(tmp_path)}
    r = subprocess.run(["bash", "bench/gpu_run.sh", "--dry-run", "--budget-s", "150"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=280)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    doc = json.loads((tmp_path / "gpu-bench.json").read_text())
    assert doc["dry_run"] is True and doc["images"] == 3
    assert doc["steps_done"] == ["cpu_reading", "shape_probe", "variant no buckets", "variant buckets",
                                 "variant buckets fp16", "processes"]
    assert doc["environment"]["onnxruntime"] and doc["shape_probe"]["provider"] == "CPUExecutionProvider"
    for name, v in doc["variants"].items():
        assert set(v["levels"]) == {"1", "2"}, name
        for lv in v["levels"].values():
            assert lv["images"] >= 1 and lv["img_s"] > 0 and lv["p50_ms"] > 0 and lv["cpu_ms_per_page"] > 0
        acc = v["accuracy_pass"]
        assert acc["scored_images"] == 3 and acc["same_text_as_cpu"] >= 2, (name, acc)
        assert (v["input_shapes"] is None) == (name == "no buckets")
    assert doc["variants"]["buckets fp16"]["model_set"] == "ppocrv6_small_fp16"
    assert doc["processes"]["processes"] == 2 and doc["processes"]["img_s_total"] > 0
