"""The ingress gate covers every path (a real server on 127.0.0.1, raw sockets where a client library
would tidy the request up): a POST to a path that takes no body is refused before its body is read,
a path with control characters and a body framed twice are refused with a JSON 400, and none of it
is charged to the memory budget."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest


def _exchange(url: str, head: bytes, body: bytes = b"", timeout: float = 10.0) -> tuple[int, dict, float]:
    """Send ``head`` (and ``body``), read the answer; (status, JSON body, seconds to the answer).
    The answer's headers are in the JSON body's ``_headers`` (lower-case names)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        t0 = time.monotonic()
        s.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        head_part, _, rest = data.partition(b"\r\n\r\n")
        elapsed = time.monotonic() - t0
        length = next((int(line.split(b":")[1]) for line in head_part.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(rest) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
    status = int(head_part.split(b" ")[1])
    headers = {k.strip().lower().decode(): v.strip().decode() for k, _, v in
               (line.partition(b":") for line in head_part.split(b"\r\n")[1:])}
    return status, {**json.loads(rest[:length] or b"{}"), "_headers": headers}, elapsed


def _post_head(path: str, length: int, extra: bytes = b"") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n").encode() + extra + b"\r\n"


def _reserved(server) -> float:
    """Bytes of the memory budget reserved now (no sample yet: nothing was ever reserved)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{server.url}/metrics").text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "ocr_memory_budget_bytes" and s.labels.get("kind") == "reserved")


@pytest.mark.parametrize("path, status", [
    ("/nope", 404), ("/V1/OCR", 404), ("/v1/ocr/", 404), ("/healthz", 405), ("/readyz", 405), ("/metrics", 405),
])
def test_a_post_to_a_path_without_a_body_route_is_refused_before_its_body(server, path, status):
    # 20 MiB declared, not a byte sent: the answer comes at once, without waiting for the body
    got, body, elapsed = _exchange(server.url, _post_head(path, 20 * 2**20))
    assert got == status and body["error"]["code"] in ("not_found", "method_not_allowed"), body
    assert elapsed < 5, elapsed  # the body timeout (30 s) was not waited for; margin for a busy machine
    assert _reserved(server) == 0


@pytest.mark.parametrize("raw_path", ["/v1/ocr%0A", "/v1/ocr%0D%0AX:%201", "/ocr%00", "/v1/ocr%7F"])
def test_a_path_with_control_characters_is_a_400(server, raw_path):
    got, body, _ = _exchange(server.url, _post_head(raw_path, 10), b"0123456789")
    assert got == 400 and "control characters" in body["error"]["message"], body


def test_a_body_framed_twice_is_a_400(server):
    head = _post_head("/v1/ocr", 10, b"Transfer-Encoding: chunked\r\n")
    got, body, elapsed = _exchange(server.url, head, b"5\r\nhello\r\n")
    assert got == 400 and "Transfer-Encoding" in body["error"]["message"], body
    assert elapsed < 5 and _reserved(server) == 0


def test_the_body_routes_still_work(client, eval_dir):
    import base64

    r = client.post("/v1/ocr", json={"image": base64.b64encode((eval_dir / "tjs_simple.png").read_bytes()).decode()})
    assert r.status_code == 200 and r.json()["lines"]


def test_the_rate_limit_answers_from_the_headers_before_the_body(tmp_path):
    """Issue: the per-token rate limit was checked after the body had been read and reserved. A
    token over its rate now gets its 429 (with Retry-After) at once, with 20 MiB declared and not a
    byte of it sent, and nothing reserved."""
    from harness.localserver import LocalServer

    token = "rate-gate-token-0123456789"
    env = {"OCR_API_TOKENS": token, "OCR_RATE_LIMIT_PER_MINUTE": "2", "OCR_RATE_LIMIT_BURST": "1"}
    with LocalServer(env, log_path=tmp_path / "svc.log") as srv:
        auth = f"Authorization: Bearer {token}\r\n".encode()
        first, body, _ = _exchange(srv.url, _post_head("/v1/ocr", 2, auth), b"{}")
        assert first == 422, body  # within the rate: the body is read (and found wanting)
        got, body, elapsed = _exchange(srv.url, _post_head("/v1/ocr", 20 * 2**20, auth))
        assert got == 429 and body["error"]["code"] == "rate_limited", body
        assert int(body["_headers"]["retry-after"]) >= 1, body["_headers"]
        assert elapsed < 5 and _reserved(srv) == 0
        other, _, _ = _exchange(srv.url, _post_head("/v1/ocr", 20 * 2**20, b"Authorization: Bearer wrong-token-0123456789\r\n"))
        assert other == 401  # a wrong token is not charged to anyone's rate
