"""URL input for the PaddleX /ocr route: only from allow-listed hosts (off when the list is empty).

Guarded against server-side request forgery: http/https only, the exact host (and port, when
listed with one) must be on the list, redirects are not followed, the body is capped at the
request-body limit (a declared Content-Length over it is refused before the body is read), and
the fetch has two time limits: ``timeout_s`` for each network operation (connect, each read) and
``deadline_s`` for the whole fetch, DNS, connection, headers and body together, so a server that
trickles a byte at a time cannot hold a request (and its admission slot) for ever.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx

from .errors import InvalidRequest, PayloadTooLarge


def host_allowed(url: str, allowed: list[str]) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host = parts.hostname.lower()
    with_port = f"{host}:{parts.port}" if parts.port else host
    return any(entry.lower() in (host, with_port) if ":" not in entry else entry.lower() == with_port for entry in allowed)


async def fetch(url: str, allowed: list[str], max_bytes: int, timeout_s: float = 10.0, *, deadline_s: float = 20.0) -> bytes:
    if not allowed:
        raise InvalidRequest("URL input is not enabled on this server; send the file as base64")
    if not host_allowed(url, allowed):
        raise InvalidRequest("the URL's host is not on this server's allow-list")
    try:
        async with asyncio.timeout(deadline_s):
            return await _get(url, max_bytes, min(timeout_s, deadline_s))
    except TimeoutError:  # the total deadline (httpx's own timeouts are httpx.TimeoutException)
        raise InvalidRequest(f"fetching the URL took too long (more than {deadline_s:g} s in all)") from None
    except httpx.HTTPError as exc:
        raise InvalidRequest(f"the URL could not be fetched ({type(exc).__name__})") from None


async def _get(url: str, max_bytes: int, timeout_s: float) -> bytes:
    # identity: the content is an image or a PDF (compressed already), and a compressed body could
    # expand in memory far beyond what it counts on the wire
    headers = {"Accept-Encoding": "identity"}
    async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, headers=headers) as client:
        async with client.stream("GET", url) as r:
            if r.status_code != 200:
                raise InvalidRequest(f"fetching the URL answered HTTP {r.status_code}")
            declared = r.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise PayloadTooLarge(f"the URL's content is over the {max_bytes}-byte limit")
            chunks, total = [], 0
            async for chunk in r.aiter_bytes():
                total += len(chunk)
                if total > max_bytes:
                    raise PayloadTooLarge(f"the URL's content is over the {max_bytes}-byte limit")
                chunks.append(chunk)
            return b"".join(chunks)
