"""URL input for the PaddleX /ocr route: only from allow-listed hosts (off when the list is empty).

Guarded against server-side request forgery:

- http/https only; the exact host must be on the list, and its port: an entry without a port
  allows only the scheme's default port (80, 443), ``host:port`` that port alone; a port that is
  not a number from 1 to 65535 is a 400-class refusal, never a 500;
- the host's addresses are resolved first and checked: an address that is not globally routable
  (private, loopback, link-local, reserved...) is refused unless the entry names that address
  itself (``10.0.0.7:9000``) or it lies in ``OCR_URL_PRIVATE_NETWORKS`` (an in-cluster object
  store); the connection then goes to the address that was checked (the name cannot resolve
  elsewhere in between), with the original ``Host`` and TLS server name;
- redirects are not followed; a body with a ``Content-Encoding`` is refused (405 gzip bytes could
  expand to 256 MiB), and the bytes kept are the bytes received, capped at the request-body limit
  (a declared Content-Length over it is refused before the body is read);
- two time limits: ``timeout_s`` for each network operation (connect, each read) and
  ``deadline_s`` for the whole fetch, DNS, connection, headers and body together, so a server that
  trickles a byte at a time cannot hold a request (and its admission slot) for ever.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from .errors import InvalidRequest, PayloadTooLarge

_DEFAULT_PORT = {"http": 80, "https": 443}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # lower case, no brackets
    port: int
    literal: IPAddress | None  # the host is an address itself


def target(url: str) -> Target:
    """The URL's scheme, host and port; InvalidRequest when they cannot be used."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORT or not parts.hostname:
        raise InvalidRequest("the URL must be http:// or https:// with a host")
    try:
        port = parts.port
    except ValueError:
        raise InvalidRequest("the URL's port is not a number from 1 to 65535") from None
    if port == 0:
        raise InvalidRequest("the URL's port is not a number from 1 to 65535")
    host = parts.hostname.lower()
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    return Target(parts.scheme, host, port or _DEFAULT_PORT[parts.scheme], literal)


def _entry(entry: str) -> tuple[str, int | None]:
    entry = entry.strip().lower()
    if entry.startswith("["):  # [v6] or [v6]:port
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    host, sep, port = entry.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return entry, None


def _allowed(t: Target, allowed: list[str]) -> bool:
    for entry in allowed:
        host, port = _entry(entry)
        if host == t.host and t.port == (port if port is not None else _DEFAULT_PORT[t.scheme]):
            return True
    return False


def host_allowed(url: str, allowed: list[str]) -> bool:
    try:
        return _allowed(target(url), allowed)
    except InvalidRequest:
        return False


def _routable(address: IPAddress, t: Target, private: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    if address.is_global and not address.is_multicast:
        return True
    if t.literal is not None and address == t.literal:  # the allow-list names this address itself
        return True
    return any(address in net for net in private)


async def resolve(t: Target, private: list) -> IPAddress:
    """The address to connect to: the host's, every one of them checked."""
    if t.literal is not None:
        addresses = [t.literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(t.host, t.port, type=socket.SOCK_STREAM)
        except OSError:
            raise InvalidRequest("the URL's host does not resolve") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses or not all(_routable(a, t, private) for a in addresses):
        raise InvalidRequest("the URL's host resolves to an address this server does not fetch from "
                             "(private, loopback or link-local: list it in OCR_URL_PRIVATE_NETWORKS)")
    return addresses[0]


async def fetch(url: str, allowed: list[str], max_bytes: int, timeout_s: float = 10.0, *, deadline_s: float = 20.0,
                private_networks: list[str] | None = None) -> bytes:
    if not allowed:
        raise InvalidRequest("URL input is not enabled on this server; send the file as base64")
    t = target(url)
    if not _allowed(t, allowed):
        raise InvalidRequest("the URL's host (and port) is not on this server's allow-list")
    private = [ipaddress.ip_network(n, strict=False) for n in private_networks or []]
    try:
        async with asyncio.timeout(deadline_s):
            address = await resolve(t, private)
            return await _get(url, t, address, max_bytes, min(timeout_s, deadline_s))
    except TimeoutError:  # the total deadline (httpx's own timeouts are httpx.TimeoutException)
        raise InvalidRequest(f"fetching the URL took too long (more than {deadline_s:g} s in all)") from None
    except httpx.HTTPError as exc:
        raise InvalidRequest(f"the URL could not be fetched ({type(exc).__name__})") from None


async def _get(url: str, t: Target, address: IPAddress, max_bytes: int, timeout_s: float) -> bytes:
    parts = urlsplit(url)
    shown = f"[{address}]" if address.version == 6 else str(address)
    pinned = urlunsplit((parts.scheme, f"{shown}:{t.port}", parts.path or "/", parts.query, ""))
    default = t.port == _DEFAULT_PORT[t.scheme]
    host_header = (f"[{t.host}]" if ":" in t.host else t.host) + ("" if default else f":{t.port}")
    # identity: the content is an image or a PDF (compressed already); an encoded body is refused
    headers = {"Accept-Encoding": "identity", "Host": host_header}
    extensions = {"sni_hostname": t.host} if t.scheme == "https" and t.literal is None else {}
    async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
        async with client.stream("GET", pinned, headers=headers, extensions=extensions) as r:
            if r.status_code != 200:
                raise InvalidRequest(f"fetching the URL answered HTTP {r.status_code}")
            encoding = r.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise InvalidRequest("the URL's content comes with a Content-Encoding; only unencoded content "
                                     "is fetched (an image or PDF is compressed already)")
            declared = r.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise PayloadTooLarge(f"the URL's content is over the {max_bytes}-byte limit")
            chunks, total = [], 0
            async for chunk in r.aiter_raw():  # the bytes as received: nothing is decoded
                total += len(chunk)
                if total > max_bytes:
                    raise PayloadTooLarge(f"the URL's content is over the {max_bytes}-byte limit")
                chunks.append(chunk)
            return b"".join(chunks)
