"""The HTTP server's own bounds, on uvicorn with the h11 parser.

What uvicorn offers is used as it is: the h11 parser's cap on a request line plus headers
(``h11_max_incomplete_event_size``; httptools has none) and the idle keep-alive timeout. Two
things are added to uvicorn's own h11 protocol (``BoundedH11Protocol``; parsing stays h11's):

- a header read timeout: a client that opens a connection and sends its headers a byte at a
  time would hold the connection for ever; a connection with no request in progress
  ``header_timeout_s`` after it opened, or after its previous response, is closed;
- the ceiling on open connections (``connection_limit``): a connection beyond it has each of its
  requests answered 503 ``overloaded`` in the native JSON envelope, with Retry-After, and is
  closed (uvicorn's own ``limit_concurrency`` answers text/plain and counts the connection
  being refused against the ceiling, serving one fewer).

Body read timeouts are enforced per request by ``api.ingress``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import Overloaded
from .settings import Settings, get_settings


async def _over_the_ceiling(scope, receive, send) -> None:
    """The answer to every request of a connection beyond the ceiling."""
    from . import metrics
    from .api import errors as envelopes

    err = Overloaded("the server holds as many open connections as it takes; retry shortly", retry_after_s=1)
    metrics.count_refusal(err)
    response = envelopes.native(err)
    response.headers["connection"] = "close"
    await response(scope, receive, send)


class BoundedH11Protocol(H11Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()  # read in each worker process
        self.header_timeout_s = settings.header_timeout_s
        self.connection_limit = settings.connection_limit
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
        super().connection_made(transport)  # counted among the server's connections from here
        if len(self.connections) > self.connection_limit:
            self.app = _over_the_ceiling
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
        "http": BoundedH11Protocol,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": settings.keep_alive_s,
    }
