"""bench/gpu.py, the GPU benchmark, on a machine without a GPU: its dataset and its refusal.

The measurement itself needs onnxruntime-gpu and a GPU (run where one is lent); here we check
that the images it carries are the benchmark's own and that it refuses, rather than timing the
CPU, when the CUDA provider is missing."""

from __future__ import annotations

import pickle

import onnxruntime as ort
import pytest

from bench import gpu
from bench.dataset import load
from evaluation import EVAL_DIR
from preprocess_service.model_spec import model_file


def test_prepare_writes_the_benchmark_images(tmp_path):
    out = tmp_path / "dataset.pkl"
    gpu.prepare(out)
    items = pickle.loads(out.read_bytes())
    expected = load(EVAL_DIR)
    assert [it["name"] for it in items] == [it.name for it in expected]
    assert all(a["data"] == b.data and a["gt"] == b.gt_lines for a, b in zip(items, expected, strict=True))


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="a GPU is here")
def test_refuses_without_the_cuda_provider(monkeypatch):
    monkeypatch.delenv("OCR_ORT_ALLOW_CPU_FALLBACK", raising=False)
    assert model_file(gpu.PROJECT_ROOT / "model_repository" / "ppocrv6_small_det").exists()
    with pytest.raises(Exception, match="CUDAExecutionProvider"):
        gpu.make_pipeline(gpu.PROJECT_ROOT / "model_repository", ["CUDAExecutionProvider"], "HEURISTIC", 1)
