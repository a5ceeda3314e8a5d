"""The HTTP server's own bounds, on uvicorn with the h11 parser.

What uvicorn offers is used as it is: the h11 parser's cap on a request line plus headers
(``h11_max_incomplete_event_size``; httptools has none), a ceiling on open connections
(``limit_concurrency``, beyond it 503), and the idle keep-alive timeout. uvicorn has no header
read timeout: a client that opens a connection and sends its headers a byte at a time would
hold the connection (and a slot under the ceiling) for ever. ``HeaderTimeoutH11Protocol`` adds
one timer to uvicorn's own h11 protocol — parsing stays h11's: a connection with no request in
progress ``header_timeout_s`` after it opened, or after its previous response, is closed.
Body read timeouts are enforced per request by ``api.ingress``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from .settings import Settings, get_settings


class HeaderTimeoutH11Protocol(H11Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = get_settings().header_timeout_s  # read in each worker process
        self._header_timer: asyncio.TimerHandle | None = None

    def _arm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _header_timeout(self) -> None:
        self._header_timer = None
        waiting_for_headers = self.cycle is None or self.cycle.response_complete
        if waiting_for_headers and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The server's bounds from the settings (see the module's docstring)."""
    return {
        "http": HeaderTimeoutH11Protocol,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "limit_concurrency": settings.connection_limit,
        "timeout_keep_alive": settings.keep_alive_s,
    }
