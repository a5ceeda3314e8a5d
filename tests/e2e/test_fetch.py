"""URL input (preprocess_service/fetch.py) against real HTTP servers on loopback: the port rule,
malformed ports, addresses that are not public, and encoded bodies (a gzip bomb)."""

from __future__ import annotations

import asyncio
import gzip
import http.server
import threading

import pytest

from harness.localserver import free_port
from preprocess_service.errors import InvalidRequest
from preprocess_service.fetch import fetch, host_allowed
from preprocess_service.settings import Settings

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
BOMB = gzip.compress(b"\x00" * (64 * 2**20))  # 64 MiB of zeros in about 64 KiB


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.hosts.append(self.headers.get("Host"))  # type: ignore[attr-defined]
        if self.path == "/bomb.png":
            body, extra = BOMB, {"Content-Encoding": "gzip"}
        else:
            body, extra = PNG, {}
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def files():
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    server.hosts = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, port
    server.shutdown()


def _fetch(url: str, allowed: list[str], **kw) -> bytes:
    return asyncio.run(fetch(url, allowed, 20 * 2**20, deadline_s=10, **kw))


def test_an_entry_without_a_port_allows_only_the_default_one():
    assert host_allowed("https://img.example.com/a.png", ["img.example.com"])
    assert host_allowed("https://img.example.com:443/a.png", ["img.example.com"])
    assert not host_allowed("https://img.example.com:8443/a.png", ["img.example.com"])
    assert not host_allowed("http://img.example.com:22/a.png", ["img.example.com"])
    assert host_allowed("http://img.example.com:8080/a", ["img.example.com:8080"])
    assert not host_allowed("http://img.example.com/a", ["img.example.com:8080"])
    assert host_allowed("http://[::1]:9000/a", ["[::1]:9000"]) and not host_allowed("http://[::1]:9001/a", ["[::1]:9000"])


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/a.png", "http://127.0.0.1:abc/a.png", "http://127.0.0.1:0/a",
                                 "http://127.0.0.1:-1/a"])
def test_a_malformed_port_is_a_clear_refusal(url):
    with pytest.raises(InvalidRequest, match="port"):
        _fetch(url, ["127.0.0.1"])


def test_a_listed_address_is_fetched_with_the_original_host(files):
    server, port = files
    assert _fetch(f"http://127.0.0.1:{port}/a.png", [f"127.0.0.1:{port}"]) == PNG
    assert server.hosts[-1] == f"127.0.0.1:{port}"


def test_a_name_that_resolves_to_a_private_address_is_refused_unless_its_network_is_listed(files):
    """'localhost' is on the list, but it resolves to loopback: refused (an allow-listed name
    whose DNS points inside the cluster must not open it), unless the operator lists the network."""
    server, port = files
    with pytest.raises(InvalidRequest, match="OCR_URL_PRIVATE_NETWORKS"):
        _fetch(f"http://localhost:{port}/a.png", [f"localhost:{port}"])
    got = _fetch(f"http://localhost:{port}/a.png", [f"localhost:{port}"], private_networks=["127.0.0.0/8"])
    assert got == PNG and server.hosts[-1] == f"localhost:{port}"  # connected to the checked address, Host kept
    with pytest.raises(InvalidRequest, match="OCR_URL_PRIVATE_NETWORKS"):
        _fetch(f"http://localhost:{port}/a.png", [f"localhost:{port}"], private_networks=["10.0.0.0/8"])


def test_an_encoded_body_is_refused_not_inflated(files):
    """405 bytes of gzip once became 256 MiB: the fetch keeps the bytes as received and refuses
    any Content-Encoding."""
    import resource

    _, port = files
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(InvalidRequest, match="Content-Encoding"):
        _fetch(f"http://127.0.0.1:{port}/bomb.png", [f"127.0.0.1:{port}"])
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 32, grown_mib  # the 64 MiB it would inflate to never existed


def test_private_networks_setting_is_checked():
    assert Settings(api_tokens="x", url_private_networks="10.0.0.0/8, fd00::/8").url_private_networks == [
        "10.0.0.0/8", "fd00::/8"]
    with pytest.raises(ValueError, match="not a network"):
        Settings(api_tokens="x", url_private_networks="10.0.0.0/33")


@pytest.mark.parametrize("address", ["169.254.169.254", "fe80::1", "10.1.2.3", "192.168.0.1", "127.0.0.1", "::1",
                                     "100.64.0.1", "0.0.0.0"])
def test_a_name_resolving_to_a_non_global_address_is_refused(address):
    """A named host (not a listed literal) must resolve to global addresses only: link-local
    (cloud metadata), private, loopback and carrier-grade NAT are refused unless listed."""
    import ipaddress

    from preprocess_service.fetch import _routable, target

    t = target("http://img.example.com/a.png")
    assert not _routable(ipaddress.ip_address(address), t, [])
    net = ipaddress.ip_network(address)
    assert _routable(ipaddress.ip_address(address), t, [net])  # unless the operator lists its network


def test_every_resolved_address_is_checked_not_only_the_first(monkeypatch):
    """One global and one link-local answer for the same name: refused. The resolver is a STAND-IN
    (no DNS server here answers a name with chosen addresses); the check is the real one."""
    import asyncio
    import socket

    from preprocess_service import fetch as fetch_module

    async def two_answers(host, port, type=0):  # noqa: A002 - getaddrinfo's own parameter name
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]

    async def run():
        loop = asyncio.get_running_loop()
        monkeypatch.setattr(loop, "getaddrinfo", two_answers)
        return await fetch_module.resolve(fetch_module.target("http://img.example.com/a.png"), [])

    with pytest.raises(InvalidRequest, match="link-local"):
        asyncio.run(run())
