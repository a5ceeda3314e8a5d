"""Deadlines that reach Triton, against the real local Triton (see tests/e2e/test_triton.py for
what is real there: everything but Triton's C++ onnxruntime backend).

A Triton of its own over a temporary repository: ppocrv6_small_det/rec (and the classifier)
with their configs written by the generator with ONE instance per model, a queue of ONE request
and a short default timeout. A long detection run (a big page) keeps the one model instance
busy while other calls arrive:

* beyond the queue's one place, a call is refused at once: 503 ``overloaded`` with Retry-After,
  well under its deadline, and Triton never runs it;
* a queued call whose deadline passes is refused by Triton itself (the backend sends its
  remaining deadline as the request's timeout) and never runs: Triton's own counters say so
  (``nv_inference_request_failure{reason="REJECTED"}`` grows by one, ``nv_inference_count`` and
  ``nv_inference_exec_count`` grow only by the calls that ran);
* a call whose deadline has already passed is not even sent.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from export_scripts import triton_config as tc
from export_scripts.fetch_models import MODELS
from harness.localserver import LocalServer, free_port
from preprocess_service.api.errors import status_of
from preprocess_service.backends.base import request_deadline
from preprocess_service.backends.triton_backend import VERDICT_GRACE_S, TritonBackend
from preprocess_service.errors import DeadlineExceeded, Overloaded
from tests.conftest import TRITON_VENV
from tests.helpers import b64
from triton_local.launch import LocalTriton

DET, REC, CLS = "ppocrv6_small_det", "ppocrv6_small_rec", "ppocr_textline_cls"
QUEUE = tc.QueuePolicy(max_queue_size=1, default_timeout_us=2_000_000)  # one place, 2 s at most
BIG = 3200  # a detection run of a 3200 x 3200 page (sides multiples of 32): seconds on a CPU
DTYPES = {"TYPE_UINT8": np.uint8, "TYPE_FP32": np.float32}


@pytest.fixture(scope="module")
def queue_triton(tmp_path_factory, repository):
    if not (TRITON_VENV / "bin" / "python").exists():
        pytest.fail(f"{TRITON_VENV} missing: `make test` builds it (make triton-venv)")
    work = tmp_path_factory.mktemp("triton_queue")
    repo = work / "repo"
    for name in (DET, REC, CLS):
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.onnx").symlink_to(repository / name / "1" / "model.onnx")
        shutil.copy(repository / name / "inference.yml", repo / name)
        text = tc.render_folder(repo / name, MODELS[name].kind, tc.ConfigOptions(queue=QUEUE, instances=1))
        assert "count: 1\n" in text and "max_queue_size: 1\n" in text and "default_timeout_microseconds: 2000000\n" in text
        (repo / name / "config.pbtxt").write_text(text)
    server = LocalTriton(TRITON_VENV, work, repository=repo, http_port=free_port(), grpc_port=free_port(),
                         metrics_port=free_port(), models=[DET, REC, CLS])
    server.start()
    yield server, repo
    server.stop()


def _counter(triton: LocalTriton, name: str, model: str, **labels: str) -> float:
    """A Triton counter for one model, summed over its other labels (e.g. every failure reason)."""
    total, found = 0.0, False
    for m in re.finditer(rf"^{name}{{([^}}]*)}} ([0-9.e+]+)$", httpx.get(triton.metrics_url).text, re.M):
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if got.get("model") == model and all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
            found = True
    assert found, f"{name}{{model={model!r}, {labels}}} not in Triton's metrics"
    return total


COUNTERS = {
    "success": ("nv_inference_request_success", {}),
    "rejected": ("nv_inference_request_failure", {"reason": "REJECTED"}),
    "failure": ("nv_inference_request_failure", {}),
    "inferences": ("nv_inference_count", {}),
    "executions": ("nv_inference_exec_count", {}),
}


def _counters(triton: LocalTriton) -> dict[str, float]:
    return {k: _counter(triton, name, DET, **labels) for k, (name, labels) in COUNTERS.items()}


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in before}


def _page(repo: Path, side: int) -> np.ndarray:
    """A blank detection input of side x side, in the dtype and layout the model declares."""
    (x,), _ = tc.read_io(repo / DET / "1" / "model.onnx")
    axes = tc.image_axes(x)
    assert axes is not None, x
    shape = [1, 0, 0, 0]
    shape[axes[0]], shape[axes[1]], shape[axes[2]] = 3, side, side
    return np.zeros(shape, DTYPES[x.data_type])


async def _call(backend: TritonBackend, page: np.ndarray, deadline_s: float | None):
    """One detection call with the request deadline deadline_s from now: (outcome, seconds)."""
    if deadline_s is not None:
        request_deadline.set(time.monotonic() + deadline_s)
    io = backend.io(DET)
    t0 = time.monotonic()
    try:
        await backend.run(DET, {io.inputs[0]: page}, [io.outputs[-1]])
        return "ok", time.monotonic() - t0
    except (Overloaded, DeadlineExceeded) as exc:
        return exc, time.monotonic() - t0


async def _settle(triton: LocalTriton, timeout: float = 30.0) -> None:
    """Until Triton has nothing queued or running for the detection model."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _counter(triton, "nv_inference_pending_request_count", DET) == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("Triton still busy")


def test_full_queue_is_refused_at_once_and_never_run(queue_triton):
    triton, repo = queue_triton
    big, small = _page(repo, BIG), _page(repo, 64)

    async def go():
        backend = TritonBackend(triton.url, timeout_s=30.0)
        try:
            await backend.load([DET])
            before = _counters(triton)
            blocker = asyncio.ensure_future(_call(backend, big, 30.0))
            await asyncio.sleep(0.6)  # the big page is running on the one instance
            flood = await asyncio.gather(*(_call(backend, small, 20.0) for _ in range(6)))
            blocked = await blocker
            await _settle(triton)
            return before, flood, blocked, _counters(triton)
        finally:
            await backend.close()

    before, flood, blocked, after = asyncio.run(go())
    assert blocked[0] == "ok" and blocked[1] > 1.0, f"the blocking run was too short to test anything: {blocked}"
    refused = [(e, t) for e, t in flood if isinstance(e, Overloaded)]
    ran = [t for e, t in flood if e == "ok"]
    # the one queued call runs after the big page, or, if that took longer than the config's 2 s
    # queue limit (a request may shorten its timeout, not lengthen it), is refused by Triton
    timed_out = [e for e, _ in flood if isinstance(e, DeadlineExceeded)]
    assert len(refused) >= 4 and len(refused) + len(ran) + len(timed_out) == len(flood), flood
    assert len(ran) + len(timed_out) <= QUEUE.max_queue_size + 1, flood
    for exc, seconds in refused:
        assert status_of(exc) == 503 and exc.code == "overloaded" and exc.retry_after_s == 1
        assert "queue for model ppocrv6_small_det is full" in exc.message
        assert seconds < 2.0, seconds  # at once: the deadline was 20 s, the blocker ran for seconds
    d = _delta(before, after)
    # Triton ran exactly the calls that succeeded; the refused ones never entered its queue
    assert d["success"] == d["inferences"] == 1 + len(ran), d
    assert d["executions"] <= d["inferences"] and d["failure"] == d["rejected"] == len(timed_out), d


def test_queued_past_its_deadline_is_refused_by_triton_and_never_run(queue_triton):
    triton, repo = queue_triton
    big, small = _page(repo, BIG), _page(repo, 64)

    async def go():
        backend = TritonBackend(triton.url, timeout_s=30.0)
        try:
            await backend.load([DET])
            before = _counters(triton)
            blocker = asyncio.ensure_future(_call(backend, big, 30.0))
            await asyncio.sleep(0.6)
            late = await _call(backend, small, 0.3)  # queued behind the big page, 300 ms to live
            blocker_done_early = blocker.done()
            blocked = await blocker
            await _settle(triton)
            mid = _counters(triton)
            gone = await _call(backend, small, -0.01)  # its deadline passed already: not even sent
            return before, late, blocker_done_early, blocked, mid, _counters(triton), gone
        finally:
            await backend.close()

    before, late, blocker_done_early, blocked, mid, after, gone = asyncio.run(go())
    assert blocked[0] == "ok", blocked
    exc, seconds = late
    assert isinstance(exc, DeadlineExceeded), late
    assert status_of(exc) == 503 and exc.code == "deadline_exceeded" and exc.retry_after_s
    # Triton's own verdict (not our client giving up), at the deadline, while the big page still ran
    assert "waited in the inference server's queue past its timeout" in exc.message
    assert not blocker_done_early, f"the blocking run was too short to test anything: {blocked}"
    assert 0.3 <= seconds < 0.3 + VERDICT_GRACE_S, (seconds, blocked)
    d = _delta(before, mid)
    assert d["rejected"] == d["failure"] == 1, d  # refused by Triton ...
    assert d["success"] == d["inferences"] == d["executions"] == 1, d  # ... and only the big page ran
    exc, seconds = gone
    assert isinstance(exc, DeadlineExceeded) and "before model ppocrv6_small_det ran" in exc.message
    assert seconds < 0.05 and _delta(mid, after) == dict.fromkeys(COUNTERS, 0.0), _delta(mid, after)


def test_the_client_of_the_service_gets_503_with_retry_after_fast(queue_triton, tmp_path, eval_dir):
    """Through the service: a flood of pages against a detection queue of one place. Every answer
    is 200 or a 503 with Retry-After; the refusals by Triton's full queue come fast (the request
    deadline is 30 s); the service serves again as soon as the flood is over."""
    from PIL import Image

    triton, _ = queue_triton
    src = Image.open(eval_dir / "tjs_simple.png").convert("RGB")
    page = tmp_path / "page.png"
    src.resize((960, 540)).save(page)  # one line of text, a detection run of a few hundred ms
    data = page.read_bytes()
    token = secrets.token_urlsafe(16)
    env = {"OCR_BACKEND": "triton", "OCR_TRITON_URL": triton.url, "OCR_API_TOKENS": token,
           "OCR_MODEL_SET": "ppocrv6_small",  # the float models this test's Triton loads
           "OCR_TRITON_STARTUP_TIMEOUT_S": "60", "OCR_REQUEST_TIMEOUT_S": "30", "OCR_MAX_IN_FLIGHT": "32",
           "OCR_MEMORY_LIMIT_MIB": "16384"}

    def post(_=None):
        t0 = time.monotonic()
        r = httpx.post(f"{srv.url}/v1/ocr", json={"image": b64(data)},
                       headers={"Authorization": f"Bearer {token}"}, timeout=60)
        return r, time.monotonic() - t0

    with LocalServer(env, log_path=tmp_path / "service.log") as srv:
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(post, range(12)))
        queue_full = []
        for r, seconds in answers:
            assert r.status_code in (200, 503), r.text
            if r.status_code == 503:
                err = r.json()["error"]
                assert r.headers["Retry-After"].isdigit(), r.headers
                assert err["code"] in ("overloaded", "deadline_exceeded"), err
                if "queue for model" in err["message"]:
                    queue_full.append(seconds)
        assert queue_full, [(r.status_code, r.text[:200]) for r, _ in answers]
        assert max(queue_full) < 10.0 and min(queue_full) < 3.0, queue_full
        r, _ = post()
        assert r.status_code == 200 and r.json()["text"] == "Tesseract.js", r.text
