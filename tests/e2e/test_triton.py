"""The Triton serving path against a real Triton server on loopback.

The server is the real ``tritonserver`` (Triton 2.51, bundled in nvidia-pytriton) loading
``model_repository/`` unchanged. The one stand-in, named as such: Triton's native onnxruntime
backend cannot be installed here, so ``triton_local/backends/onnxruntime/model.py`` (a
Python-based backend running onnxruntime) serves ``backend: "onnxruntime"``. The service talks
to it over the real v2 HTTP protocol with tritonclient.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from evaluation.scoring import load_items
from harness.localserver import LocalServer
from tests.conftest import MODELS, _service
from tests.helpers import b64


def _post(url, token, data: bytes, timeout=120):
    return httpx.post(f"{url}/v1/ocr", json={"image": b64(data)},
                      headers={"Authorization": f"Bearer {token}"}, timeout=timeout)


def _metric(triton, name: str, model: str) -> float:
    text = httpx.get(triton.metrics_url).text
    m = re.search(rf'^{name}{{model="{model}",version="1"}} ([0-9.e+]+)$', text, re.M)
    assert m, f"{name} for {model} not in Triton's metrics"
    return float(m.group(1))


def test_readiness_reflects_triton(triton_service):
    srv, _ = triton_service
    r = httpx.get(f"{srv.url}/readyz")
    assert r.status_code == 200 and r.json()["backend"] == "triton"


@pytest.fixture(scope="module")
def bucketed_server(tmp_path_factory):
    """The embedded backend with shape buckets on, as the Triton backend always has them."""
    token = secrets.token_urlsafe(16)
    log = tmp_path_factory.mktemp("bucketed") / "service.log"
    with LocalServer({"OCR_API_TOKENS": token, "OCR_SHAPE_BUCKETS": "on"}, log_path=log) as srv:
        yield srv, token


def test_parity_with_the_embedded_backend_on_every_eval_image(triton_service, bucketed_server, eval_dir):
    """Same texts, boxes within 1 px, confidences within 5e-3, for every evaluation image: the
    same model files and the same shape buckets in-process and over Triton."""
    srv, token = triton_service
    emb_srv, emb_token = bucketed_server
    for item in load_items(eval_dir):
        data = item.image.read_bytes()
        emb = _post(emb_srv.url, emb_token, data)
        tri = _post(srv.url, token, data)
        assert emb.status_code == tri.status_code == 200, item.name
        e, t = emb.json(), tri.json()
        assert [ln["text"] for ln in t["lines"]] == [ln["text"] for ln in e["lines"]], item.name
        for le, lt in zip(e["lines"], t["lines"]):
            # Triton's dynamic batcher merges a page's recognition batches of one width bucket
            # (they arrive together): a batched run moves the confidences' last digits
            assert abs(le["confidence"] - lt["confidence"]) <= 5e-3, item.name
            for pe, pt in zip(le["box"], lt["box"]):
                assert abs(pe[0] - pt[0]) <= 1 and abs(pe[1] - pt[1]) <= 1, item.name
        assert t["model"]["backend"] == "triton"
        assert t["model"]["execution_providers"][MODELS[1]].startswith("triton:onnxruntime:KIND_CPU")


def test_triton_metrics_count_our_requests(triton_service, triton, eval_dir):
    srv, token = triton_service
    before = {m: _metric(triton, "nv_inference_request_success", m) for m in MODELS[:2]}
    for _ in range(3):
        assert _post(srv.url, token, (eval_dir / "tess_phototest.png").read_bytes()).status_code == 200
    after = {m: _metric(triton, "nv_inference_request_success", m) for m in MODELS[:2]}
    assert all(after[m] >= before[m] + 3 for m in MODELS[:2]), (before, after)


def test_triton_down_gives_503_then_recovers_by_itself(triton_service, triton, eval_dir):
    srv, token = triton_service
    data = (eval_dir / "tjs_simple.png").read_bytes()
    assert _post(srv.url, token, data).status_code == 200
    triton.stop()
    try:
        for _ in range(3):
            t0 = time.monotonic()
            r = _post(srv.url, token, data, timeout=30)
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "backend_unavailable"
            assert "Retry-After" in r.headers
            assert time.monotonic() - t0 < 15  # bounded by the deadline, never a hang
        ready = httpx.get(f"{srv.url}/readyz")  # the pod stays in the Service and answers 503 itself
        assert ready.status_code == 200 and ready.json()["backend_ready"] is False
    finally:
        triton.start()
    deadline = time.monotonic() + 30
    while httpx.get(f"{srv.url}/readyz").json().get("backend_ready") is not True:
        assert time.monotonic() < deadline, "the backend did not come back"
        time.sleep(0.5)
    r = _post(srv.url, token, data)
    assert r.status_code == 200 and r.json()["text"] == "Tesseract.js"


def test_hung_triton_hits_the_deadline_not_the_client(triton, eval_dir, tmp_path_factory):
    """A Triton that accepts connections but never answers (SIGSTOP): 503 at the deadline."""
    srv, token = _service(triton, tmp_path_factory, 3)
    srv.start()
    try:
        _hung_triton(srv, token, triton, eval_dir)
    finally:
        srv.stop()


def _hung_triton(srv, token, triton, eval_dir):
    data = (eval_dir / "tjs_simple.png").read_bytes()
    os.killpg(triton.proc.pid, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(3) as pool:
            t0 = time.monotonic()
            rs = list(pool.map(lambda _: _post(srv.url, token, data, timeout=60), range(3)))
            elapsed = time.monotonic() - t0
        assert [r.status_code for r in rs] == [503, 503, 503]
        assert all("did not answer" in r.json()["error"]["message"] for r in rs)
        assert elapsed < 20  # the 3 s deadline (per call), not the client's 60 s
    finally:
        os.killpg(triton.proc.pid, signal.SIGCONT)
    deadline = time.monotonic() + 30
    while _post(srv.url, token, data).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.5)


def test_triton_restart_under_load(triton_service, triton, eval_dir):
    """Clients keep sending while Triton goes down and comes back: only 200s and 503s with
    Retry-After, no hang, and full recovery without restarting the service."""
    import threading

    srv, token = triton_service
    data = (eval_dir / "tjs_simple.png").read_bytes()
    stop = threading.Event()
    results: list[tuple[float, object, str | None]] = []

    def client_loop():
        while not stop.is_set():
            try:
                r = _post(srv.url, token, data, timeout=60)
                results.append((time.monotonic(), r.status_code, r.headers.get("Retry-After")))
            except httpx.HTTPError as exc:
                results.append((time.monotonic(), type(exc).__name__, None))

    threads = [threading.Thread(target=client_loop) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        triton.stop()
        time.sleep(3)
        triton.start()
        restarted = time.monotonic()
        deadline = restarted + 60
        while not any(ts > restarted and code == 200 for ts, code, _ in list(results)):
            assert time.monotonic() < deadline, "no success after Triton came back"
            time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(90)
    codes = {code for _, code, _ in results}
    assert codes == {200, 503}, codes
    assert all(ra for _, code, ra in results if code == 503)


def test_stopping_the_local_triton_leaves_no_process(tmp_path):
    from harness.localserver import free_port
    from tests.conftest import TRITON_VENV
    from triton_local.launch import LocalTriton

    server = LocalTriton(TRITON_VENV, tmp_path, http_port=free_port(), grpc_port=free_port(),
                         metrics_port=free_port(), models=["ppocr_textline_cls"])
    server.start()
    pgid = server.proc.pid
    server.stop()
    time.sleep(0.5)
    import subprocess

    left = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout.split()
    assert left == [], f"processes left in Triton's group: {left}"


def test_an_error_answer_is_a_502_and_a_refused_connection_is_retried_then_a_503(triton):
    """The real Triton answers a malformed call (float32 where the model takes uint8) with an error:
    the service's error is 502 ``backend_error``, not retried (the same call would fail again).
    A connection that is refused is retried OCR_TRITON_RETRIES times, then 503 ``backend_unavailable``."""
    import asyncio
    import socket
    import threading

    import numpy as np

    from preprocess_service.api.errors import status_of
    from preprocess_service.backends.triton_backend import TritonBackend
    from preprocess_service.errors import BackendError, BackendUnavailable
    from preprocess_service.model_sets import DEFAULT_MODEL_SET, MODEL_SETS

    det = MODEL_SETS[DEFAULT_MODEL_SET].det
    assert det in MODELS

    async def malformed():
        backend = TritonBackend(f"127.0.0.1:{triton.http_port}", timeout_s=10, retries=2)
        try:
            await backend.load([det])
            name = backend.io(det).inputs[0]
            with pytest.raises(BackendError) as err:
                await backend.run(det, {name: np.zeros((1, 64, 64, 3), np.float32)})
            return err.value
        finally:
            await backend.close()

    err = asyncio.run(malformed())
    assert status_of(err) == 502 and err.code == "backend_error"

    accepted = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]

    def close_every_connection():  # a port that accepts and hangs up at once, counting the attempts
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            conn.close()

    threading.Thread(target=close_every_connection, daemon=True).start()

    async def hung_up():
        backend = TritonBackend(f"127.0.0.1:{port}", timeout_s=5, retries=2)
        try:
            with pytest.raises(BackendUnavailable) as err:
                await backend.run(det, {"x": np.zeros((1, 64, 64, 3), np.uint8)}, outputs=["prob"])
            return err.value
        finally:
            await backend.close()

    try:
        unavailable = asyncio.run(hung_up())
    finally:
        listener.close()
    assert status_of(unavailable) == 503 and unavailable.code == "backend_unavailable"
    assert unavailable.retry_after_s
    assert len(accepted) == 1 + 2, accepted  # the call and its two retries
