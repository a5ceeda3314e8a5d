"""Fleet semantics on real processes: per-pod limits with several workers, and a pod that stays
ready (and answers 503) while its Triton is down, then serves once Triton is back."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from harness.localserver import LocalServer, free_port
from tests.conftest import MODELS, TRITON_VENV
from tests.helpers import b64, eventually, png_bytes, render_lines
from triton_local.launch import LocalTriton

TOKEN = "fleet-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _gauge(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M))


def test_two_workers_keep_the_pods_in_flight_limit(tmp_path):
    """OCR_MAX_IN_FLIGHT=2 with 2 workers: each worker takes 1 slot, so the pod never runs more
    than 2 jobs at once (before: 2 per worker, 4 in all)."""
    env = {"OCR_API_TOKENS": TOKEN, "OCR_WORKERS": "2", "OCR_MAX_IN_FLIGHT": "2", "OCR_MAX_QUEUE": "2",
           "OCR_QUEUE_TIMEOUT_S": "20"}
    page = b64(png_bytes(render_lines(["the quick brown fox jumps"] * 12, size=40)))
    with LocalServer(env, log_path=tmp_path / "service.log") as srv:
        peak = {"in_flight": 0.0, "waiting": 0.0}
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak["in_flight"] = max(peak["in_flight"], _gauge(srv.url, "ocr_jobs_in_flight"))
                peak["waiting"] = max(peak["waiting"], _gauge(srv.url, "ocr_jobs_waiting"))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with ThreadPoolExecutor(12) as pool:
            codes = list(pool.map(lambda _: httpx.post(f"{srv.url}/v1/ocr", json={"image": page}, headers=AUTH,
                                                       timeout=120).status_code, range(12)))
        stop.set()
        sampler.join(5)
    assert set(codes) <= {200, 503} and 200 in codes
    assert 1 <= peak["in_flight"] <= 2, peak
    assert peak["waiting"] <= 2, peak


def test_a_stopped_triton_keeps_the_pod_ready_and_answers_503_until_it_is_back(tmp_path):
    http_port = free_port()
    env = {"OCR_API_TOKENS": TOKEN, "OCR_BACKEND": "triton", "OCR_TRITON_URL": f"127.0.0.1:{http_port}",
           "OCR_TRITON_STARTUP_TIMEOUT_S": "2", "OCR_BACKEND_CHECK_INTERVAL_S": "0.5"}
    srv = LocalServer(env, log_path=tmp_path / "service.log")
    t0 = time.monotonic()
    srv.start(timeout=30, wait_for_backend=False)
    assert time.monotonic() - t0 < 20  # it listens without waiting for Triton
    try:
        assert httpx.get(f"{srv.url}/healthz").status_code == 200
        ready = httpx.get(f"{srv.url}/readyz")
        assert ready.status_code == 200 and ready.json()["backend_ready"] is False
        image = b64(png_bytes(render_lines(["triton is back"], size=36)))
        r = httpx.post(f"{srv.url}/v1/ocr", json={"image": image}, headers=AUTH, timeout=30)
        assert r.status_code == 503 and r.json()["error"]["code"] == "backend_unavailable" and r.headers["retry-after"]
        assert eventually(lambda: _gauge(srv.url, "ocr_backend_up") == 0, 10)  # checked every 0.5 s
        assert 'ocr_rejected_total{reason="backend_unavailable"}' in httpx.get(f"{srv.url}/metrics").text
        triton = LocalTriton(TRITON_VENV, tmp_path / "triton", http_port=http_port, grpc_port=free_port(),
                             metrics_port=free_port(), models=MODELS)
        with triton:
            deadline = time.monotonic() + 90
            while httpx.get(f"{srv.url}/readyz").json().get("backend_ready") is not True:
                assert time.monotonic() < deadline, "the service did not pick up Triton"
                time.sleep(0.5)
            r = httpx.post(f"{srv.url}/v1/ocr", json={"image": image}, headers=AUTH, timeout=60)
            assert r.status_code == 200 and r.json()["text"] == "triton is back"
            assert eventually(lambda: _gauge(srv.url, "ocr_backend_up") == 1, 10)
    finally:
        srv.stop()


def test_sigterm_while_waiting_for_triton_exits_promptly(tmp_path):
    env = {"OCR_API_TOKENS": TOKEN, "OCR_BACKEND": "triton", "OCR_TRITON_URL": f"127.0.0.1:{free_port()}",
           "OCR_SHUTDOWN_DELAY_S": "0"}
    srv = LocalServer(env, log_path=tmp_path / "service.log")
    srv.start(timeout=30, wait_for_backend=False)
    assert srv.proc is not None
    t0 = time.monotonic()
    os.kill(srv.proc.pid, signal.SIGTERM)
    code = srv.proc.wait(20)
    assert code == 0 and time.monotonic() - t0 < 10
    srv.stop()
