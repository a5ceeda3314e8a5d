"""Shape buckets end to end: a real service reports its fixed input shapes and serves concurrent
requests through the cross-request batcher; the GPU Triton configs refuse to load without a GPU
(a real Triton server)."""

from __future__ import annotations

import base64
import secrets
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from harness.localserver import LocalServer, free_port
from tests.conftest import TRITON_VENV
from triton_local.launch import LocalTriton

IMAGES = ("tess_phototest.png", "tjs_simple.png", "pp_en_word_1.png", "ic15_img_1.jpg", "wildreceipt_2.jpeg",
          "dtrb_demo_4.png")


def _body(path) -> dict:
    return {"image": base64.b64encode(path.read_bytes()).decode()}


def test_a_bucketed_service_reports_its_shapes_and_batches_concurrent_requests(tmp_path, eval_dir):
    token = secrets.token_urlsafe(16)
    env = {"OCR_API_TOKENS": token, "OCR_SHAPE_BUCKETS": "on", "OCR_BATCH_DELAY_US": "5000"}
    with LocalServer(env, log_path=tmp_path / "service.log") as srv:
        ready = httpx.get(f"{srv.url}/readyz").json()
        shapes = ready["input_shapes"]
        det, rec = ready["models"]["det"], ready["models"]["rec"]
        assert sorted(shapes[det]) == sorted([n, h, w, 3] for h, w in ((320, 320), (320, 960), (640, 960), (960, 960))
                                             for n in (1, 2))
        assert len(shapes[rec]) == 16 and {s[2] for s in shapes[rec]} == {320, 640, 1280, 3200}
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=srv.url, headers=headers, timeout=120) as c:
            alone = {n: c.post("/v1/ocr", json=_body(eval_dir / n)).json()["text"] for n in IMAGES}
            with ThreadPoolExecutor(8) as pool:
                rs = list(pool.map(lambda n: (n, c.post("/v1/ocr", json=_body(eval_dir / n))), IMAGES * 2))
        for name, r in rs:
            assert r.status_code == 200, r.text
            assert r.json()["text"] == alone[name], name


def test_a_service_with_triton_always_pads_onto_buckets(triton_service):
    srv, _ = triton_service
    ready = httpx.get(f"{srv.url}/readyz").json()
    assert ready["backend"] == "triton" and ready["input_shapes"], ready


def test_gpu_configs_refuse_to_load_without_a_gpu(tmp_path):
    """configs/gpu.pbtxt is KIND_GPU: on a machine without a GPU, Triton refuses the model instead
    of running it on the CPU (the real Triton server, --model-config-name=gpu)."""
    if not (TRITON_VENV / "bin" / "python").exists():
        pytest.fail(f"{TRITON_VENV} missing: `make test` builds it (make triton-venv)")
    log = tmp_path / "triton.log"
    server = LocalTriton(TRITON_VENV, tmp_path, http_port=free_port(), grpc_port=free_port(),
                         metrics_port=free_port(), models=["ppocrv6_small_det", "ppocrv6_small_rec"],
                         log_path=log, extra_args=["--model-config-name=gpu"])
    with pytest.raises(RuntimeError, match="tritonserver exited"):
        server.start(timeout=120)
    server.stop()
    text = log.read_text()
    assert "has kind KIND_GPU but no GPUs are available" in text
    assert "model_config_name" in text and "| gpu" in text
