"""Calls spread over Triton addresses (OCR_TRITON_BALANCE, backends/triton_endpoints.py), on the
real Triton on loopback.

A second Triton is not started here (bench/triton_balance.py measures two): two addresses that
reach the same real server ("127.0.0.1:P" and "localhost:P") are two endpoints to the service,
each with its own connection pool, which is what the balancing acts on. Where a headless
Service's DNS answer changes, the answer is scripted (a stand-in for the cluster's DNS, named so);
the real resolver is exercised on "localhost".
"""

from __future__ import annotations

import asyncio

import cv2
import httpx
import numpy as np
import pytest

from harness.localserver import LocalServer, free_port
from preprocess_service.backends import create_backend
from preprocess_service.backends.triton_endpoints import Endpoints, resolve_all, split_targets
from preprocess_service.errors import BackendUnavailable
from preprocess_service.options import RequestOptions
from preprocess_service.pipeline import Pipeline
from preprocess_service.settings import Settings
from tests.helpers import b64, png_bytes, render_lines

LINES = ["balanced calls", "least busy first"]


def _page() -> np.ndarray:
    return cv2.cvtColor(np.array(render_lines(LINES)), cv2.COLOR_RGB2BGR)


def _backend_of(backend):
    return getattr(backend, "inner", backend)


async def _read_pages(settings: Settings, n: int, resolver=None, between=None):
    backend = create_backend(settings, triton_resolver=resolver)
    try:
        pipeline = await Pipeline.create(settings, backend)
        page = _page()
        texts = []
        for k in range(n):
            got = await asyncio.gather(*(pipeline.read(page, RequestOptions()) for _ in range(4)))
            texts += [[line.text for line in r.lines] for r in got]
            if between is not None:
                await between(k, _backend_of(backend).endpoints)
        return texts, dict(_backend_of(backend).endpoints.counts()), _backend_of(backend).endpoints
    finally:
        await backend.close()


def test_calls_spread_over_every_address(triton):
    """Two addresses of the real Triton: each gets a share of the calls, the text is the same."""
    port = triton.http_port
    one = Settings(api_tokens="x", backend="triton", triton_url=f"127.0.0.1:{port}")
    two = Settings(api_tokens="x", backend="triton", triton_url=f"127.0.0.1:{port},localhost:{port}")
    alone, counts_alone, _ = asyncio.run(_read_pages(one, 2))
    spread, counts, _ = asyncio.run(_read_pages(two, 3))
    assert list(counts_alone) == [f"127.0.0.1:{port}"]
    assert set(counts) == {f"127.0.0.1:{port}", f"localhost:{port}"}
    total = sum(counts.values())
    assert min(counts.values()) >= 0.25 * total, counts  # least busy first: neither address starves
    assert all(t == alone[0] for t in alone + spread) and any(LINES[0] in t for t in alone[0])


def test_a_new_address_gets_calls_and_a_gone_one_none(triton):
    """A scripted headless-Service answer (stand-in for the cluster's DNS): a pod that joins gets
    calls from the next resolution on; a pod that leaves gets none and its connections close."""
    port = triton.http_port
    a, b = f"127.0.0.1:{port}", f"localhost:{port}"
    answer = {"now": [a]}
    seen: list[dict[str, int]] = []

    async def resolver(host: str, p: int) -> list[str]:
        assert (host, p) == ("triton-headless", 8000)
        return list(answer["now"])

    async def between(k: int, endpoints: Endpoints) -> None:
        seen.append(endpoints.counts())
        answer["now"] = {0: [a, b], 1: [b]}.get(k, [b])
        await endpoints.refresh()

    settings = Settings(api_tokens="x", backend="triton", triton_url="triton-headless:8000", triton_balance="dns",
                        triton_resolve_s=300)
    texts, counts, endpoints = asyncio.run(_read_pages(settings, 4, resolver, between))
    assert seen[0] == {a: seen[0][a]} and seen[0][a] > 0  # only A at first
    assert seen[1][b] > 0 and seen[1][a] > seen[0][a]  # both after B joined
    assert counts[a] == seen[1][a]  # nothing more to A once it left the answer
    assert counts[b] > seen[1][b]
    assert all(any(LINES[0] in t for t in page) for page in texts)


def test_an_address_that_refuses_is_skipped(triton):
    """Hostile: a listed address with nothing listening (a pod gone without leaving the answer).
    Every page is read: a refused connection is retried on the other address, and the dead one
    is skipped afterwards."""
    dead = f"127.0.0.1:{free_port()}"
    live = f"127.0.0.1:{triton.http_port}"
    answer = {"now": [live]}

    async def resolver(host: str, p: int) -> list[str]:
        return list(answer["now"])

    async def between(k: int, endpoints: Endpoints) -> None:
        answer["now"] = [dead, live]  # after the models were found: inference calls meet it
        await endpoints.refresh()

    settings = Settings(api_tokens="x", backend="triton", triton_url="triton-headless:8000", triton_balance="dns",
                        triton_resolve_s=300)
    texts, counts, _ = asyncio.run(_read_pages(settings, 3, resolver, between))
    assert len(texts) == 12 and all(any(LINES[0] in t for t in page) for page in texts)
    assert 1 <= counts[dead] <= 4 < counts[live], counts  # tried, then skipped while marked down


def test_no_address_at_all_is_a_503_not_a_hang():
    async def nothing(host: str, p: int) -> list[str]:
        raise OSError("NXDOMAIN: no ready pod")

    async def go():
        endpoints = Endpoints("triton-headless:8000", "dns", 1.0, resolver=nothing)
        assert await endpoints.pick() is None
        from preprocess_service.backends.triton_backend import TritonBackend

        backend = TritonBackend("triton-headless:8000", balance="dns", resolver=nothing)
        backend._io["m"] = None  # a model it believes served: the call itself must fail cleanly
        with pytest.raises(BackendUnavailable):
            await backend._infer("m", [], [])
        await backend.close()

    asyncio.run(go())


def test_real_resolver_and_address_rules():
    assert asyncio.run(resolve_all("localhost", 8000)) == ["127.0.0.1:8000"]
    assert asyncio.run(resolve_all("10.0.0.7", 8000)) == ["10.0.0.7:8000"]
    assert split_targets("http://a:1, b:2") == [("a", 1), ("b", 2)]
    for bad in ("a", "a:", ":80", "a:99999", ""):
        with pytest.raises(ValueError):
            split_targets(bad)
    with pytest.raises(ValueError, match="one Triton in the pod"):
        Settings(api_tokens="x", backend="triton", triton_shm=True, triton_balance="dns")
    with pytest.raises(ValueError, match="one Triton in the pod"):
        Settings(api_tokens="x", backend="triton", triton_shm=True, triton_url="a:1,b:1")


def test_service_resolves_a_real_name(triton, tmp_path):
    """The service started as the chart starts it (OCR_TRITON_BALANCE=dns), its host resolved by
    the system resolver: it is ready and reads a page."""
    token = "balance-test-token-0123456789"
    env = {"OCR_BACKEND": "triton", "OCR_TRITON_URL": f"localhost:{triton.http_port}", "OCR_TRITON_BALANCE": "dns",
           "OCR_TRITON_RESOLVE_S": "1", "OCR_API_TOKENS": token, "OCR_TRITON_STARTUP_TIMEOUT_S": "60"}
    with LocalServer(env, log_path=tmp_path / "service.log") as srv, httpx.Client(base_url=srv.url, timeout=120) as c:
        assert c.get("/readyz").status_code == 200
        r = c.post("/v1/ocr", json={"image": b64(png_bytes(render_lines(LINES)))},
                   headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        assert LINES[0] in [line["text"] for line in r.json()["lines"]]
    assert f"Triton addresses: 127.0.0.1:{triton.http_port}" in (tmp_path / "service.log").read_text()
