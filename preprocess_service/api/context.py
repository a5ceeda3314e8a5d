"""Outermost ASGI middleware: request id, in-flight gauge, request metrics, one access log line."""

from __future__ import annotations

import logging
import time

from .. import metrics
from ..logredact import redact_url
from ..logs import new_request_id, request_id

access_log = logging.getLogger("preprocess_service.access")
# The method label of the request metrics: the standard methods, every other one (the client chose
# it, and each would be a new series) counted as "other".
METRIC_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})


def method_label(method: str) -> str:
    return method if method in METRIC_METHODS else "other"


class RequestContext:
    def __init__(self, app, known_paths: set[str] | None = None):
        self.app = app
        self.known_paths = known_paths or set()

    def _route(self, scope) -> str:
        route = scope.get("route")
        path = getattr(route, "path", None)
        if path:
            return path
        return scope["path"] if scope["path"] in self.known_paths else "unmatched"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or ())
        rid = new_request_id(headers.get(b"x-request-id", b"").decode("latin-1") or None)
        token = request_id.set(rid)
        status = {"code": 500}
        start = time.perf_counter()
        metrics.IN_FLIGHT.inc()

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = list(message.get("headers", [])) + [(b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            metrics.IN_FLIGHT.dec()
            elapsed = time.perf_counter() - start
            route = self._route(scope)
            method = method_label(scope["method"])
            metrics.HTTP_REQUESTS.labels(route, method, str(status["code"])).inc()
            metrics.HTTP_DURATION.labels(route, method).observe(elapsed)
            query = scope.get("query_string", b"").decode("latin-1")
            path = scope["path"] + (f"?{query}" if query else "")
            client = scope.get("client")
            raw_method = scope["method"][:16]  # as sent, cut: client text
            access_log.info(
                "%s %s %d", raw_method, redact_url(path), status["code"],
                extra={
                    "method": raw_method, "path": redact_url(path), "route": route,
                    "status": status["code"], "duration_ms": round(elapsed * 1000, 2),
                    "client": f"{client[0]}:{client[1]}" if client else None,
                },
            )
            request_id.reset(token)
