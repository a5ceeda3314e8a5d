"""URL input for the PaddleX /ocr route: only from allow-listed hosts (off when the list is empty).

Guarded against server-side request forgery: http/https only, the exact host (and port, when
listed with one) must be on the list, redirects are not followed, the body is capped at the
request-body limit, and the fetch has a timeout.
"""

from __future__ import annotations

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


async def fetch(url: str, allowed: list[str], max_bytes: int, timeout_s: float = 10.0) -> bytes:
    if not allowed:
        raise InvalidRequest("URL input is not enabled on this server; send the file as base64")
    if not host_allowed(url, allowed):
        raise InvalidRequest("the URL's host is not on this server's allow-list")
    try:
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
            async with client.stream("GET", url) as r:
                if r.status_code != 200:
                    raise InvalidRequest(f"fetching the URL answered HTTP {r.status_code}")
                chunks, total = [], 0
                async for chunk in r.aiter_bytes():
                    total += len(chunk)
                    if total > max_bytes:
                        raise PayloadTooLarge(f"the URL's content is over the {max_bytes}-byte limit")
                    chunks.append(chunk)
                return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise InvalidRequest(f"the URL could not be fetched ({type(exc).__name__})") from None
