"""Overload, deadlines, shutdown, tokens, hostile input: every test on loopback, bounded in
count and time. The long load run has a CI variant (LOAD_TEST_SECONDS, default 15 s) and a full
one (LOAD_TEST_SECONDS=300 make test PYTEST_ARGS='-k load')."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.localserver import LocalServer
from preprocess_service import errors
from preprocess_service.admission import TokenBuckets
from preprocess_service.api.errors import status_of
from preprocess_service.imaging import decode_base64, decode_image
from tests.helpers import b64

TOKEN = "reliability-token-0123456789"


def _server(tmp_path, **env) -> LocalServer:
    base = {"OCR_API_TOKENS": TOKEN}
    base.update({k: str(v) for k, v in env.items()})
    return LocalServer(base, log_path=tmp_path / f"svc-{len(os.listdir(tmp_path))}.log")


def _post(url, data: str, token=TOKEN, timeout=120, **kw):
    return httpx.post(f"{url}/v1/ocr", json={"image": data}, headers={"Authorization": f"Bearer {token}"},
                      timeout=timeout, **kw)


@pytest.fixture(scope="module")
def page(eval_dir) -> str:
    return b64((eval_dir / "tess_eurotext.png").read_bytes())


@pytest.fixture(scope="module")
def small(eval_dir) -> str:
    return b64((eval_dir / "tjs_simple.png").read_bytes())


def test_beyond_in_flight_and_queue_bounds_503_at_once(tmp_path, page):
    with _server(tmp_path, OCR_MAX_IN_FLIGHT=1, OCR_MAX_QUEUE=1, OCR_QUEUE_TIMEOUT_S=60) as srv:
        def call(_):
            t = time.monotonic()
            r = _post(srv.url, page)
            return r, time.monotonic() - t

        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(call, range(6)))
    codes = sorted(r.status_code for r, _ in results)
    assert set(codes) == {200, 503} and codes.count(200) >= 2  # one running, one queued (at least)
    refused = [(r, dt) for r, dt in results if r.status_code == 503]
    served = [dt for r, dt in results if r.status_code == 200]
    for r, dt in refused:
        assert r.json()["error"]["code"] == "overloaded" and int(r.headers["Retry-After"]) >= 1
        assert dt < min(served)  # answered at once, not after waiting for a slot


def test_queue_wait_is_bounded(tmp_path, page):
    """A request waiting for a slot gets its 503 ``overloaded`` after OCR_QUEUE_TIMEOUT_S, not when
    the slot frees: the refused ones answer well before the served ones, within the timeout plus a
    margin for the request's own reading and the loaded machine."""
    with _server(tmp_path, OCR_MAX_IN_FLIGHT=1, OCR_MAX_QUEUE=10, OCR_QUEUE_TIMEOUT_S=0.2) as srv:
        def call(_):
            t = time.monotonic()
            r = _post(srv.url, page)
            return r, time.monotonic() - t

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(call, range(4)))
    codes = [r.status_code for r, _ in results]
    assert 200 in codes and 503 in codes
    for r, dt in results:
        if r.status_code == 503:
            assert r.json()["error"]["code"] == "overloaded" and int(r.headers["Retry-After"]) >= 1
            assert dt < 0.2 + 1.5, dt


def test_deadline_gives_503_and_the_slot_comes_back(tmp_path, page, small):
    with _server(tmp_path, OCR_REQUEST_TIMEOUT_S=0.05, OCR_MAX_IN_FLIGHT=1) as srv:
        r = _post(srv.url, page)
        assert r.status_code == 503 and r.json()["error"]["code"] == "deadline_exceeded" and "Retry-After" in r.headers
    with _server(tmp_path, OCR_REQUEST_TIMEOUT_S=2, OCR_MAX_IN_FLIGHT=1) as srv:
        assert _post(srv.url, small).status_code == 200


def test_per_token_rate_limit(tmp_path, small):
    other = "second-token-9876543210abcdef"
    with _server(tmp_path, OCR_API_TOKENS=f"{TOKEN},{other}", OCR_RATE_LIMIT_PER_MINUTE=6, OCR_RATE_LIMIT_BURST=2) as srv:
        codes = [_post(srv.url, small).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = _post(srv.url, small)
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1
        assert _post(srv.url, small, token=other).status_code == 200  # limits are per token


def test_token_buckets_refill():
    b = TokenBuckets(per_minute=60, burst=2)
    assert b.take("a", now=0.0) == 0.0 and b.take("a", now=0.0) == 0.0
    assert b.take("a", now=0.0) == pytest.approx(1.0)
    assert b.take("a", now=1.0) == 0.0


def test_token_rotation_in_the_file_without_restart(tmp_path, small):
    tokens = tmp_path / "tokens"
    tokens.write_text("old-token-aaaaaaaaaaaaaaaa\n")
    with LocalServer({"OCR_API_TOKENS_FILE": str(tokens)}, log_path=tmp_path / "rot.log") as srv:
        assert _post(srv.url, small, token="old-token-aaaaaaaaaaaaaaaa").status_code == 200
        tmp = tmp_path / "tokens.new"
        tmp.write_text("new-token-bbbbbbbbbbbbbbbb\n")
        os.replace(tmp, tokens)  # how a Kubernetes Secret volume swaps its content
        os.utime(tokens, (time.time() + 2, time.time() + 2))
        assert _post(srv.url, small, token="new-token-bbbbbbbbbbbbbbbb").status_code == 200
        assert _post(srv.url, small, token="old-token-aaaaaaaaaaaaaaaa").status_code == 401


def test_sigterm_during_load_loses_no_request(tmp_path, page):
    srv = _server(tmp_path, OCR_SHUTDOWN_DELAY_S=1.5, OCR_SHUTDOWN_GRACE_S=60, OCR_MAX_IN_FLIGHT=2, OCR_MAX_QUEUE=8)
    srv.start()
    try:
        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(_post, srv.url, page) for _ in range(4)]
            time.sleep(0.5)  # all four accepted: two running, two waiting for a slot
            srv.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            ready = httpx.get(f"{srv.url}/readyz", timeout=5)
            assert ready.status_code == 503 and ready.json()["detail"] == "shutting down"
            late = _post(srv.url, page, timeout=10)
            assert late.status_code == 503 and late.json()["error"]["code"] == "shutting_down"
            codes = [f.result().status_code for f in futures]
        assert codes == [200, 200, 200, 200]
        assert srv.proc.wait(60) == 0  # exits 0 after draining
    finally:
        srv.stop()


def _rss(pid: int) -> int:
    proc = psutil.Process(pid)
    return proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))


LOAD_SECONDS = float(os.environ.get("LOAD_TEST_SECONDS", "15"))


@pytest.mark.timeout(int(LOAD_SECONDS) + 240)
def test_load_at_twice_capacity(tmp_path, eval_dir):
    """Open-loop load at about twice the measured capacity for a fixed time: only 200, or
    503/429 with Retry-After; no connection errors; memory does not grow."""
    seconds = LOAD_SECONDS
    bodies = [b64((eval_dir / n).read_bytes()) for n in ("tjs_simple.png", "pp_word_10.png", "easyocr_chinese.jpg", "tess_phototest.png")]
    # With glibc's dynamic mmap threshold, freed image-sized buffers stay resident in its arenas
    # and one RSS sample swings by +-100 MiB with what happened to be in flight (bench soak
    # trajectory in the README), which hides a leak as well as it fakes one. The fixed threshold
    # returns them on free, so RSS is flat and growth here means something is really kept.
    with _server(tmp_path, OCR_MALLOC_MMAP_THRESHOLD_KIB=4096) as srv, \
            httpx.Client(timeout=120, headers={"Authorization": f"Bearer {TOKEN}"},
                                                limits=httpx.Limits(max_connections=64)) as client:
        t = time.monotonic()
        for i in range(8):  # warm-up, and the capacity measurement (sequential)
            client.post(f"{srv.url}/v1/ocr", json={"image": bodies[i % 4]}).raise_for_status()
        capacity = 8 / (time.monotonic() - t)
        # warm-up under concurrency too: parallel model runs take their own working memory once
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: client.post(f"{srv.url}/v1/ocr", json={"image": bodies[i % 4]}), range(16)))
        rss_start = _rss(srv.proc.pid)
        interval = 1.0 / (2 * capacity)
        results, lock = [], threading.Lock()

        def one(i):
            try:
                r = client.post(f"{srv.url}/v1/ocr", json={"image": bodies[i % 4]})
                out = (r.status_code, r.headers.get("Retry-After"))
            except httpx.HTTPError as exc:
                out = (type(exc).__name__, None)
            with lock:
                results.append(out)

        with ThreadPoolExecutor(48) as pool:
            deadline = time.monotonic() + seconds
            i = 0
            while time.monotonic() < deadline:
                pool.submit(one, i)
                i += 1
                time.sleep(interval)
        rss_end = _rss(srv.proc.pid)
    codes = {c for c, _ in results}
    counts = {c: sum(1 for x, _ in results if x == c) for c in codes}
    print(f"\nload: capacity {capacity:.2f} img/s, offered {1 / interval:.2f} req/s for {seconds:g} s, "
          f"{len(results)} requests, status counts {counts}, RSS {rss_start / 2**20:.0f} -> {rss_end / 2**20:.0f} MiB")
    assert codes <= {200, 503, 429}, codes
    assert all(ra for c, ra in results if c in (503, 429))
    assert 200 in codes and len(results) == i
    assert rss_end < rss_start * 1.05, (rss_start, rss_end)


def test_deeply_nested_json_and_cors_default(client):
    r = client.post("/v1/ocr", content=b"[" * 100_000 + b"]" * 100_000, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500 and "error" in r.json()
    r = client.options("/v1/ocr", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in r.headers  # CORS is off by default


def test_cors_when_configured(tmp_path):
    with _server(tmp_path, OCR_CORS_ORIGINS="https://app.example") as srv:
        ok = httpx.options(f"{srv.url}/v1/ocr", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
        assert ok.headers.get("access-control-allow-origin") == "https://app.example"
        bad = httpx.options(f"{srv.url}/v1/ocr", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in bad.headers


@pytest.mark.timeout(960)  # above the subprocess's own 900 s
def test_schemathesis_fuzzing_finds_no_server_error(server, tmp_path):
    """Thousands of generated requests from the service's own OpenAPI schema: never a 5xx."""
    cli = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    r = subprocess.run(
        [cli, "run", f"{server.url}/openapi.json", "--checks", "not_a_server_error", "--max-examples", "600",
         "-H", f"Authorization: Bearer {server.token}", "--seed", "1", "--request-timeout", "60",
         "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    import re

    m = re.search(r"(\d+) generated, (\d+) passed", r.stdout)
    assert m and int(m.group(2)) == int(m.group(1)) >= 1000, r.stdout[-2000:]



@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_decoder_fuzz_random_bytes(data):
    try:
        decode_image(data, 4_000_000)
    except errors.OCRError as err:
        assert 400 <= status_of(err) < 500, err  # the client's bytes: a 4xx, never a 5xx


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.data())
def test_decoder_fuzz_mutated_real_images(eval_dir, data):
    """Real PNG/JPEG/... files with bytes flipped, cut or inserted: a clear error or an image."""
    names = ["tjs_simple.png", "pp_word_10.png", "tjs_simple_exif90.jpg", "tjs_cosmic_alpha.png", "mmocr_rec_1058891.jpg"]
    raw = bytearray((eval_dir / data.draw(st.sampled_from(names))).read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            raw[pos] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del raw[pos:pos + data.draw(st.integers(1, 64))]
        else:
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
        if not raw:
            break
    try:
        img = decode_image(bytes(raw), 4_000_000)
        assert img.ndim == 3 and img.shape[2] == 3
    except errors.OCRError as err:
        assert 400 <= status_of(err) < 500, err


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=200))
def test_base64_fuzz(text):
    try:
        decode_base64(text)
    except errors.OCRError as err:
        assert 400 <= status_of(err) < 500, err
