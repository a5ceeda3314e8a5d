"""URL input (fetch.fetch) against a real HTTP server on the loopback interface: a total deadline
whatever the server does (a byte every 0.5 s, in the body or in the headers), the size cap,
redirects not followed, the allow-list."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from preprocess_service.api.errors import status_of
from preprocess_service.errors import InvalidRequest, PayloadTooLarge
from preprocess_service.fetch import fetch

BODY = bytes(range(256)) * 40  # 10,240 bytes
MAX_BYTES = 64 * 1024


class Handler(BaseHTTPRequestHandler):
    hits: list[str]  # set per server

    def log_message(self, format, *args):
        pass

    def _trickle(self, data: bytes, every_s: float) -> None:
        for i in range(len(data)):
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()
            time.sleep(every_s)

    def do_GET(self):  # http.server names it so
        self.hits.append(self.path)
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up: what the deadline tests want

    def _route(self) -> None:
        if self.path == "/ok":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)
        elif self.path.startswith("/trickle-body"):  # headers at once, then a byte every 0.5 s
            n = int(self.path.rsplit("/", 1)[1])
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            self.wfile.flush()
            self._trickle(BODY[:n], 0.5)
        elif self.path == "/trickle-headers":  # the status line and headers themselves a byte every 0.5 s
            self._trickle(b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\nX-Padding: " + b"x" * 100 + b"\r\n\r\nbody", 0.5)
        elif self.path == "/big-declared":
            self.send_response(200)
            self.send_header("Content-Length", str(MAX_BYTES + 1))
            self.end_headers()
            self.wfile.write(b"\0" * (MAX_BYTES + 1))
        elif self.path == "/big-undeclared":  # no Content-Length: the body ends when the connection closes
            self.send_response(200)
            self.end_headers()
            for _ in range(MAX_BYTES // 4096 + 2):
                self.wfile.write(b"\0" * 4096)
        elif self.path == "/exact":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"\1" * MAX_BYTES)
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/ok")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_error(404)


@pytest.fixture
def server() -> Iterator[tuple[str, str, list[str]]]:
    """(base URL, allow-list entry, paths requested) of a real server on 127.0.0.1."""
    hits: list[str] = []
    handler = type("H", (Handler,), {"hits": hits})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    host, port = httpd.server_address[:2]
    try:
        yield f"http://{host}:{port}", f"{host}:{port}", hits
    finally:
        httpd.shutdown()
        httpd.server_close()


def run_fetch(url: str, allowed: list[str], **kwargs) -> bytes:
    return asyncio.run(fetch(url, allowed, kwargs.pop("max_bytes", MAX_BYTES), **kwargs))


def test_a_normal_server_works(server):
    base, allowed, hits = server
    assert run_fetch(f"{base}/ok", [allowed]) == BODY
    assert hits == ["/ok"]


@pytest.mark.timeout(15)  # without the deadline this would run for ever (8 minutes here)
def test_a_trickling_body_is_cut_at_the_total_deadline(server):
    """A byte every 0.5 s never trips a per-operation timeout of 10 s; the 1.5 s deadline does."""
    base, allowed, _ = server
    start = time.monotonic()
    with pytest.raises(InvalidRequest, match="took too long") as err:
        run_fetch(f"{base}/trickle-body/1000", [allowed], timeout_s=10.0, deadline_s=1.5)
    elapsed = time.monotonic() - start
    assert 1.4 <= elapsed < 1.5 + 1.5, elapsed  # the deadline, plus a margin for a loaded machine
    assert 400 <= status_of(err.value) < 500 and "1.5 s" in err.value.message


@pytest.mark.timeout(15)
def test_trickling_headers_are_cut_at_the_total_deadline(server):
    base, allowed, _ = server
    start = time.monotonic()
    with pytest.raises(InvalidRequest, match="took too long"):
        run_fetch(f"{base}/trickle-headers", [allowed], timeout_s=10.0, deadline_s=1.5)
    assert time.monotonic() - start < 2.0


def test_a_slow_but_finite_body_within_the_deadline_is_fetched(server):
    """Longer than the per-operation timeout in all (4 bytes, ~2 s) but within the deadline."""
    base, allowed, _ = server
    start = time.monotonic()
    assert run_fetch(f"{base}/trickle-body/4", [allowed], timeout_s=1.0, deadline_s=10.0) == BODY[:4]
    assert time.monotonic() - start > 1.0


def test_the_default_deadline_is_a_keyword_with_a_default(server):
    import inspect

    param = inspect.signature(fetch).parameters["deadline_s"]
    assert param.kind is inspect.Parameter.KEYWORD_ONLY and 0 < param.default <= 60
    base, allowed, _ = server
    assert asyncio.run(fetch(f"{base}/ok", [allowed], MAX_BYTES, 5.0)) == BODY  # the old positional call


def test_the_size_cap_holds(server):
    base, allowed, _ = server
    with pytest.raises(PayloadTooLarge):
        run_fetch(f"{base}/big-declared", [allowed])
    with pytest.raises(PayloadTooLarge):
        run_fetch(f"{base}/big-undeclared", [allowed])
    assert len(run_fetch(f"{base}/exact", [allowed])) == MAX_BYTES  # the limit itself is allowed


def test_redirects_are_not_followed(server):
    base, allowed, hits = server
    with pytest.raises(InvalidRequest, match="HTTP 302"):
        run_fetch(f"{base}/redirect", [allowed])
    assert hits == ["/redirect"]  # /ok, the redirect's target, was never requested


def test_http_errors_and_the_allow_list(server):
    base, allowed, hits = server
    with pytest.raises(InvalidRequest, match="HTTP 404"):
        run_fetch(f"{base}/missing", [allowed])
    with pytest.raises(InvalidRequest, match="allow-list"):
        run_fetch(f"{base}/ok", ["127.0.0.2"])
    with pytest.raises(InvalidRequest, match="not enabled"):
        run_fetch(f"{base}/ok", [])
    assert hits == ["/missing"]
