"""Tensors through Triton's system shared memory (OCR_TRITON_SHM), against the real local Triton.

The service and the local Triton (``tests/conftest.py``'s ``triton``) share this host's /dev/shm,
as a co-located Triton (a sidecar in the API pod) does. Each service talks to Triton through its
own counting TCP proxy (``bench/proxy.py``), so the bytes on the HTTP connection are measured:
with shared memory only the JSON of each call crosses it. The network path (OCR_TRITON_SHM off)
is the reference: the JSON answers must be the same.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from bench.proxy import CountingProxy
from harness.localserver import LocalServer
from preprocess_service.backends.triton_shm import ALIGN, MIB, RegionPool, auto_region_bytes, plan
from tests.conftest import MODELS
from tests.helpers import b64

IMAGES = ["tess_phototest.png", "tess_eurotext.png", "ic15_img_1.jpg", "easyocr_chinese.jpg",
          "tjs_simple.png", "tess_segmodeimg.png", "dtrb_demo_10.jpg", "tess_hello_google.png"]
DET = MODELS[0]  # the default set's, which the conftest's Triton loads
# eight requests at once, each with a detection call and then its recognition batches at once:
# enough regions that (nearly) every call finds one
SHM_REGIONS = 32
REC = MODELS[1]


# --- the layout of a call in a region (no Triton needed) ----------------------------------------

def test_a_region_holds_a_detection_call_at_the_detection_limit():
    assert auto_region_bytes(960) == 8 * MIB
    for side in (64, 960, 1280, 2048):
        size = auto_region_bytes(side)
        layout = plan(size, {"x": 3 * side * side}, {"prob_u8": (side * side, 1)})
        assert layout is not None, side
        layout = plan(size, {"x": 3 * side * side}, {"fetch_name_0": (4 * side * side, 4)})
        assert layout is not None, side  # even the float32 map fits


def test_the_layout_never_overlaps_and_refuses_what_does_not_fit():
    layout = plan(4 * MIB, {"x": 2 * 48 * 320 * 3, "valid_width": 16}, {"ctc_argmax": (None, 8), "ctc_max_prob": (None, 4)})
    assert layout is not None
    spans = sorted([*layout.inputs.values(), *layout.outputs.values()])
    assert all(off % ALIGN == 0 for off, _ in spans)
    assert all(a_off + a_len <= b_off for (a_off, a_len), (b_off, _) in zip(spans, spans[1:]))
    assert spans[-1][0] + spans[-1][1] <= 4 * MIB
    # the rest of the region goes to the outputs, in proportion to their element size
    assert layout.outputs["ctc_argmax"][1] > layout.outputs["ctc_max_prob"][1] > 1 * MIB
    assert plan(1 * MIB, {"x": 1 * MIB}, {"y": (None, 1)}) is None  # the input alone fills it
    assert plan(4 * MIB, {"x": 2 * MIB}, {"y": (3 * MIB, 1)}) is None  # the expected output does not fit
    assert plan(4 * MIB, {"x": 0}, {"y": (None, 1)}) is None  # empty tensors go over the network


def test_the_pool_lends_each_region_to_one_call_and_unlinks_them():
    pool = RegionPool(2, MIB)
    pool.create()
    try:
        keys = [r.key for r in pool.regions]
        assert all(Path("/dev/shm", k.lstrip("/")).exists() for k in keys)
        a, b = pool.acquire(), pool.acquire()
        assert a is not None and b is not None and a is not b
        assert pool.acquire() is None  # every region lent: the call goes over the network
        pool.release(a)
        assert pool.acquire() is a
    finally:
        pool.destroy()
    assert not any(Path("/dev/shm", k.lstrip("/")).exists() for k in keys)


def _backend_with_a_pool(monkeypatch, infer):
    """A TritonBackend whose pool (two 1 MiB regions) Triton is taken to know, and whose calls
    to Triton are ``infer``."""
    from preprocess_service.backends import triton_backend as tb
    from preprocess_service.backends.base import ModelIO

    monkeypatch.setattr(tb, "SHM_QUARANTINE_FACTOR", 0.0)
    monkeypatch.setattr(tb, "SHM_QUARANTINE_MARGIN_S", 0.3)
    backend = tb.TritonBackend("127.0.0.1:9", timeout_s=5, shm=tb.ShmOptions(regions=2, region_bytes=MIB))
    backend._io["det"] = ModelIO(inputs=("x",), outputs=("prob_u8",))
    backend._out_dtypes["det"] = {"prob_u8": "UINT8"}
    assert backend._pool is not None
    backend._pool.create()
    backend._registered = True
    monkeypatch.setattr(backend, "_infer", infer)
    return backend, backend._pool


def test_a_region_whose_call_got_no_answer_rests_before_it_is_lent_again(monkeypatch):
    """A call that ended without Triton's answer (deadline, cancellation, cut connection) may
    still run in Triton and write into its region later: that region is not lent again at once.
    A call Triton answered, even with an error, gives its region back at once."""
    import asyncio

    from tritonclient.utils import InferenceServerException

    from preprocess_service.errors import BackendUnavailable, Overloaded

    async def no_answer(*_):
        raise BackendUnavailable("the inference server did not answer within 5s")

    async def queue_full(*_):
        raise InferenceServerException("Exceeds maximum queue size", status="503")

    async def hangs(*_):
        await asyncio.sleep(60)

    x = {"x": np.zeros((1, 64, 64, 3), np.uint8)}

    async def scenario():
        backend, pool = _backend_with_a_pool(monkeypatch, no_answer)
        try:
            with pytest.raises(BackendUnavailable):
                await backend.run("det", x, ["prob_u8"])
            assert len(pool._free) == 1 and backend.shm_stats["quarantined"] == 1  # resting
            await asyncio.sleep(0.5)
            assert len(pool._free) == 2  # lent again after the rest
            monkeypatch.setattr(backend, "_infer", queue_full)
            with pytest.raises(Overloaded):
                await backend.run("det", x, ["prob_u8"])
            assert len(pool._free) == 2 and backend.shm_stats["quarantined"] == 1  # answered: back at once
            monkeypatch.setattr(backend, "_infer", hangs)
            task = asyncio.create_task(backend.run("det", x, ["prob_u8"]))
            await asyncio.sleep(0.1)
            task.cancel()  # the client went away, the request may still be in Triton
            with pytest.raises(asyncio.CancelledError):
                await task
            assert len(pool._free) == 1 and backend.shm_stats["quarantined"] == 2
        finally:
            pool.destroy()

    asyncio.run(scenario())


# --- against the local Triton ----------------------------------------------------------------------

def _start(triton, tmp_path_factory, proxy: CountingProxy | None, log: Path | None = None,
           **env: str) -> tuple[LocalServer, str]:
    token = secrets.token_urlsafe(16)
    log = log or tmp_path_factory.mktemp("svc-shm") / "service.log"
    url = f"127.0.0.1:{proxy.port}" if proxy else triton.url
    base = {"OCR_BACKEND": "triton", "OCR_TRITON_URL": url, "OCR_API_TOKENS": token,
            "OCR_TRITON_STARTUP_TIMEOUT_S": "60", "OCR_TRITON_TIMEOUT_S": "30",
            # no health checks on the counted connection while bytes are measured
            "OCR_BACKEND_CHECK_INTERVAL_S": "3600",
            # eight requests at once really run at once (2 cores here would give 4 slots)
            "OCR_MAX_IN_FLIGHT": "8", "OCR_QUEUE_TIMEOUT_S": "120", "OCR_REQUEST_TIMEOUT_S": "300",
            "OCR_MEMORY_LIMIT_MIB": "16384"}
    srv = LocalServer({**base, **env}, log_path=log)
    srv.start()
    return srv, token


def _post(srv: LocalServer, token: str, data: bytes, timeout: float = 120) -> httpx.Response:
    return httpx.post(f"{srv.url}/v1/ocr", json={"image": b64(data)},
                      headers={"Authorization": f"Bearer {token}"}, timeout=timeout)


def _answer(r: httpx.Response) -> dict:
    assert r.status_code == 200, r.text
    body = r.json()
    body.pop("timings_ms")
    return body


def _metric(triton, name: str, model: str) -> float:
    text = httpx.get(triton.metrics_url).text
    m = re.search(rf'^{name}{{model="{model}",version="1"}} ([0-9.e+]+)$', text, re.M)
    assert m, f"{name} for {model} not in Triton's metrics"
    return float(m.group(1))


def _regions_on_triton(triton, srv: LocalServer) -> list[dict]:
    status = httpx.get(f"http://{triton.url}/v2/systemsharedmemory/status").json()
    return [r for r in status if r["name"].startswith(f"ocr-{srv.proc.pid}-")]


@pytest.fixture(scope="module")
def net_proxy(triton):
    with CountingProxy(triton.http_port) as p:
        yield p


@pytest.fixture(scope="module")
def shm_proxy(triton):
    with CountingProxy(triton.http_port) as p:
        yield p


@pytest.fixture(scope="module")
def net_service(triton, tmp_path_factory, net_proxy):
    srv, token = _start(triton, tmp_path_factory, net_proxy)
    yield srv, token
    srv.stop()


@pytest.fixture(scope="module")
def shm_service(triton, tmp_path_factory, shm_proxy):
    srv, token = _start(triton, tmp_path_factory, shm_proxy, OCR_TRITON_SHM="true", OCR_TRITON_SHM_REGIONS=str(SHM_REGIONS))
    yield srv, token
    srv.stop()


@pytest.fixture(scope="module")
def reference(net_service, eval_dir) -> dict[str, dict]:
    """The network path's answer for each image."""
    srv, token = net_service
    return {name: _answer(_post(srv, token, (eval_dir / name).read_bytes())) for name in IMAGES}


def test_shared_memory_reads_exactly_what_the_network_path_reads(shm_service, reference, triton, eval_dir):
    srv, token = shm_service
    assert len(_regions_on_triton(triton, srv)) == SHM_REGIONS  # registered once, at start-up
    before = {m: _metric(triton, "nv_inference_request_success", m) for m in (DET, REC)}
    for name in IMAGES:
        got = _answer(_post(srv, token, (eval_dir / name).read_bytes()))
        assert got == reference[name], name  # texts, boxes, confidences, sizes, models: the same JSON
        assert got["lines"], name
    after = {m: _metric(triton, "nv_inference_request_success", m) for m in (DET, REC)}
    assert after[DET] >= before[DET] + len(IMAGES)  # Triton ran them
    assert after[REC] >= before[REC] + len(IMAGES)


def _bytes_per_page(srv, token, proxy: CountingProxy, eval_dir) -> float:
    time.sleep(0.2)
    proxy.reset()
    for name in IMAGES:
        assert _post(srv, token, (eval_dir / name).read_bytes()).status_code == 200
    time.sleep(0.2)  # the proxy's thread has forwarded (and counted) the last answer
    return (proxy.up + proxy.down) / len(IMAGES)


@pytest.fixture(scope="module")
def net_bytes_per_page(net_service, net_proxy, reference, eval_dir) -> float:
    return _bytes_per_page(*net_service, net_proxy, eval_dir)


def test_the_bytes_on_the_connection_drop(shm_service, shm_proxy, net_bytes_per_page, reference, eval_dir):
    net = net_bytes_per_page
    shm = _bytes_per_page(*shm_service, shm_proxy, eval_dir)
    print(f"\nbytes per page on the Triton connection over {len(IMAGES)} evaluation images: "
          f"network {net:,.0f}, shared memory {shm:,.0f} ({shm / net:.2%})")
    assert net > 100_000
    assert shm < 0.05 * net


def _concurrent(srv, token, eval_dir, rounds: int = 2) -> list[tuple[str, dict]]:
    names = [IMAGES[i % len(IMAGES)] for i in range(8)]
    out = []
    with ThreadPoolExecutor(8) as pool:
        for _ in range(rounds):
            rs = list(pool.map(lambda n: _post(srv, token, (eval_dir / n).read_bytes()), names))
            out += [(n, _answer(r)) for n, r in zip(names, rs)]
    return out


def _same_reading(got: dict, ref: dict, name: str) -> None:
    """Texts exactly; boxes within two map pixels and confidences within 0.02: Triton's dynamic batcher
    runs calls of one shape that arrive together as one batch (with shape buckets, two pages on one
    detection canvas), and a batched run moves the last digits of the detection map, enough to
    shift a box edge by a pixel or two of the map (scaled to the image: pages over the default
    detection limit of 960 are read at a smaller scale); a line cropped a pixel wider or narrower
    reads the same text at a slightly different confidence."""
    assert [ln["text"] for ln in got["lines"]] == [ln["text"] for ln in ref["lines"]], name
    tolerance = 2 * max(1.0, max(ref["width"], ref["height"]) / 960) + 1
    for lg, lr in zip(got["lines"], ref["lines"], strict=True):
        assert np.abs(np.asarray(lg["box"]) - np.asarray(lr["box"])).max() <= tolerance, name
    assert np.allclose([ln["confidence"] for ln in got["lines"]], [ln["confidence"] for ln in ref["lines"]], atol=2e-2), name
    assert got["text"] == ref["text"] and (got["width"], got["height"]) == (ref["width"], ref["height"]), name


def test_eight_concurrent_requests_each_get_their_own_reading(shm_service, reference, shm_proxy, net_bytes_per_page,
                                                            eval_dir):
    """No region is lent to two calls at once: every answer is its own image's, and the calls
    did go through shared memory (the bytes on the connection stay low)."""
    srv, token = shm_service
    shm_proxy.reset()
    answers = _concurrent(srv, token, eval_dir)
    for name, got in answers:
        _same_reading(got, reference[name], name)
    time.sleep(0.2)
    per_page = (shm_proxy.up + shm_proxy.down) / len(answers)
    identical = sum(got == reference[name] for name, got in answers)
    print(f"\n8 at once: {identical}/{len(answers)} answers identical to the network path's, {per_page:,.0f} bytes per page")
    assert per_page < 0.05 * net_bytes_per_page


def test_a_small_busy_pool_falls_back_to_the_network_and_stays_right(triton, tmp_path_factory, reference, eval_dir):
    """One region of 1 MiB: the larger detection calls do not fit it, and calls that find it lent
    go over the network; the answers are still each image's own."""
    srv, token = _start(triton, tmp_path_factory, None, OCR_TRITON_SHM="true", OCR_TRITON_SHM_REGIONS="1",
                        OCR_TRITON_SHM_REGION_MIB="1")
    try:
        assert len(_regions_on_triton(triton, srv)) == 1
        for name, got in _concurrent(srv, token, eval_dir, rounds=1):
            _same_reading(got, reference[name], name)
        pid = srv.proc.pid
    finally:
        srv.stop()
    # closed: Triton forgot the regions and /dev/shm holds none of them
    assert not [r for r in httpx.get(f"http://{triton.url}/v2/systemsharedmemory/status").json()
                if r["name"].startswith(f"ocr-{pid}-")]
    assert not list(Path("/dev/shm").glob(f"ocr-{pid}-*"))


def test_a_triton_restart_is_survived(shm_service, shm_proxy, net_service, net_proxy, triton, eval_dir, reference):
    """Triton down: 503 backend_unavailable with Retry-After. Back (it forgot the regions): the
    service registers them again by itself and answers 200, still through shared memory."""
    srv, token = shm_service
    name = "tess_phototest.png"
    data = (eval_dir / name).read_bytes()
    assert _post(srv, token, data).status_code == 200
    triton.stop()
    try:
        for _ in range(2):
            t0 = time.monotonic()
            r = _post(srv, token, data, timeout=60)
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "backend_unavailable" and "Retry-After" in r.headers
            assert time.monotonic() - t0 < 15
    finally:
        triton.start()
    assert _regions_on_triton(triton, srv) == []  # a new Triton knows nothing of them
    deadline = time.monotonic() + 60
    while (r := _post(srv, token, data)).status_code != 200:
        assert time.monotonic() < deadline, r.text
        time.sleep(0.5)
    assert _answer(r) == reference[name]
    assert len(_regions_on_triton(triton, srv)) == SHM_REGIONS
    # and the tensors went through shared memory again, not over the connection
    net_proxy.reset()
    _answer(_post(*net_service, data))
    shm_proxy.reset()
    _answer(_post(srv, token, data))
    time.sleep(0.2)
    assert shm_proxy.up + shm_proxy.down < 0.05 * (net_proxy.up + net_proxy.down)


def test_a_hung_triton_gives_503_and_then_right_answers(triton, tmp_path_factory, reference, eval_dir):
    """Triton hung (SIGSTOP) past the per-call deadline: 503, and the regions of the calls it
    never answered rest (it may run them once it wakes). Right after it wakes, while it works off
    those calls, every answer is its own image's."""
    log = tmp_path_factory.mktemp("svc-shm-hung") / "service.log"
    srv, token = _start(triton, tmp_path_factory, None, log=log, OCR_TRITON_SHM="true", OCR_TRITON_SHM_REGIONS="4",
                        OCR_TRITON_TIMEOUT_S="3")
    try:
        data = (eval_dir / "tess_phototest.png").read_bytes()
        os.killpg(triton.proc.pid, signal.SIGSTOP)
        try:
            with ThreadPoolExecutor(3) as pool:
                rs = list(pool.map(lambda _: _post(srv, token, data, timeout=60), range(3)))
            assert [r.status_code for r in rs] == [503, 503, 503]
        finally:
            os.killpg(triton.proc.pid, signal.SIGCONT)
        # at once, while Triton works off what it was sent while it slept: with a 3 s deadline on
        # a busy machine a request may get 503, but every answer must be its own image's
        names = ["tjs_simple.png", "dtrb_demo_10.jpg", "tess_hello_google.png", "easyocr_chinese.jpg"]
        read = 0
        with ThreadPoolExecutor(len(names)) as pool:
            for _ in range(4):
                rs = list(pool.map(lambda n: _post(srv, token, (eval_dir / n).read_bytes()), names))
                assert {r.status_code for r in rs} <= {200, 503}
                for name, r in zip(names, rs):
                    if r.status_code == 200:
                        _same_reading(_answer(r), reference[name], name)
                        read += 1
        assert read >= len(names)
    finally:
        srv.stop()
    text = log.read_text()
    assert "rests" in text and "its call ended without Triton's answer" in text
    assert re.search(r"[1-9][0-9]* regions rested after a call without an answer", text)
