"""The gate every request body passes: who may send one, how big, how fast, at what memory cost.

An ASGI middleware in front of the application, before any body byte is read or parsed:

1. On the OCR routes the token is checked from the headers (``Authorization: Bearer``, or
   ``?key=`` for the original API): 401 in that route's envelope comes before 413 and 422, and a
   client without a valid token costs one header check.
2. A declared ``Content-Length`` over the limit is 413 at once.
3. The body's cost (``budget.BODY_FACTOR`` x its length, or x the limit when chunked) is reserved
   from the pod's memory budget; when it does not fit now the answer is 503 with Retry-After,
   without reading the body.
4. The body is read with an idle timeout between chunks and a total deadline; a slow body is
   dropped with 408 and the connection closed. A body over the limit as it arrives is 413. A body
   still arriving when a draining server's cut-off comes is answered 503 ``shutting_down``.
5. The buffered body is replayed to the application; the reservation is released when the
   response has been sent.

What the HTTP server bounds itself (header size and read time, idle keep-alive, open
connections) is configured in ``__main__``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse
from starlette.routing import Match

from .. import budget, metrics
from ..auth import bearer_token
from ..errors import (
    BadRequest,
    MemoryBudgetBusy,
    MethodNotAllowed,
    NotFound,
    OCRError,
    PayloadTooLarge,
    RequestTimeout,
    ShuttingDown,
    Unauthorized,
)
from ..settings import Settings
from . import errors as envelopes
from .deps import AppContext

Renderer = Callable[[OCRError], JSONResponse]

# A request of this API is a few objects (its options, up to OCR_MAX_IMAGES_PER_REQUEST images):
# these caps are far above any of them and far below what makes parsing cost a multiple of the body.
MAX_JSON_CONTAINERS = 1000
MAX_JSON_KEYS = 1000

def _header(scope, name: bytes) -> str | None:
    for k, v in scope.get("headers") or ():
        if k == name:
            return v.decode("latin-1")
    return None


def _query_key(scope) -> str | None:
    """``?key=`` as the application will read it (Starlette: the last one wins)."""
    query = scope.get("query_string", b"").decode("latin-1")
    values = [value for name, value in parse_qsl(query, keep_blank_values=True) if name == "key"]
    return values[-1] if values else None


class Ingress:
    def __init__(self, app, context: AppContext, routers: tuple = ()):
        self.app = app
        self.context = context
        self.routers = routers  # the app's routers: the body-taking routes are found in them
        s: Settings = context.settings
        self.max_bytes = s.max_body_bytes
        self.idle_timeout_s = s.body_idle_timeout_s
        self.total_timeout_s = s.body_timeout_s
        self._routes: dict[str, tuple[str, Renderer]] | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refused = self._malformed(scope)
        if refused is not None:
            return await self._reject(scope, receive, send, self._count(envelopes.native, refused))
        if scope["method"] != "POST":
            return await self.app(scope, receive, send)
        route = self._protected(scope).get(scope["path"])
        if route is None:  # no other route takes a body: refused before a byte of it is read
            return await self._reject(scope, receive, send, self._count(envelopes.native, self._no_body_route(scope)))
        kind, render = route
        length = self._declared_length(scope)
        refused = self._before_the_body(scope, kind, length)
        if refused is not None:
            return await self._reject(scope, receive, send, self._count(render, refused))
        cost = budget.BODY_FACTOR * (length if length is not None else self.max_bytes)
        pool = self.context.admission.budget
        if not pool.try_reserve(cost):
            busy = MemoryBudgetBusy("the server's memory budget is in use; retry shortly", retry_after_s=1)
            return await self._reject(scope, receive, send, self._count(render, busy))
        hold = budget.BodyHold(pool, cost)
        hold_token = budget.body_hold.set(hold)
        try:
            return await self._with_body(scope, receive, send, render)
        finally:
            budget.body_hold.reset(hold_token)
            hold.answered()  # released now, or when a job abandoned still running ends

    def _before_the_body(self, scope, kind: str, length: int | None) -> OCRError | None:
        """What refuses the request from its headers alone: no valid token (401), the token over
        its rate (429), a declared length over the limit (413), no service yet (503)."""
        presented = _query_key(scope) if kind == "key" else bearer_token(_header(scope, b"authorization"))
        identity = self.context.tokens.identify(presented)
        if identity is None:
            return Unauthorized("Authentification error" if kind == "key" else "missing or invalid bearer token")
        try:  # the token's rate limit, from the headers: a 429 costs no body either
            self.context.admission.check_rate(identity)
        except OCRError as limited:
            return limited
        if length is not None and length > self.max_bytes:
            return PayloadTooLarge(f"request body of {length} bytes is over the {self.max_bytes}-byte limit")
        if self.context.service is None:
            return self.context.not_serving_yet()
        return None

    async def _with_body(self, scope, receive, send, render: Renderer) -> None:
        """Read the body within its bounds, check its JSON structure, and hand it to the app."""
        body = await self._read(receive)
        if isinstance(body, OCRError):
            return await self._reject(scope, receive, send, self._count(render, body))
        if body is None:  # the client went away
            return None
        shape = self._json_shape(scope, body)
        if shape is not None:
            return await self._reject(scope, receive, send, self._count(render, shape))
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    @staticmethod
    def _declared_length(scope) -> int | None:
        declared = _header(scope, b"content-length")
        try:
            return int(declared) if declared is not None else None
        except ValueError:
            return None

    def _protected(self, scope) -> dict[str, tuple[str, Renderer]]:
        """The body-taking routes and how each authenticates and answers: every ``EnvelopeRoute``
        that takes POST in the routers the app includes (``routers``), read once."""
        if self._routes is None:
            self._routes = {r.path: (r.auth, type(r).render) for router in self.routers for r in router.routes
                            if isinstance(r, envelopes.EnvelopeRoute) and "POST" in (r.methods or ())}
        return self._routes

    async def _read(self, receive) -> bytes | OCRError | None:
        """The whole body, or why not: too slow (408), too large (413), the client gone (None), or
        the server's shutdown cut-off reached while it arrived (503 ``shutting_down``)."""
        chunks, total = [], 0
        deadline = time.monotonic() + self.total_timeout_s
        cut_off = asyncio.ensure_future(self.context.admission.cut_off())
        try:
            while True:
                wait = min(self.idle_timeout_s, deadline - time.monotonic())
                arrived = asyncio.ensure_future(receive())
                await asyncio.wait({arrived, cut_off}, timeout=max(wait, 0.001), return_when=asyncio.FIRST_COMPLETED)
                if not arrived.done():
                    arrived.cancel()
                    if cut_off.done():
                        return ShuttingDown("the server shut down before this request's body arrived; retry on "
                                            "another replica", retry_after_s=1)
                    return RequestTimeout(
                        f"the request body did not arrive in time (at most {self.idle_timeout_s:g} s between "
                        f"chunks, {self.total_timeout_s:g} s in all)")
                message = arrived.result()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                total += len(chunk)
                if total > self.max_bytes:
                    return PayloadTooLarge(f"request body is over the {self.max_bytes}-byte limit")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
        finally:
            cut_off.cancel()

    @staticmethod
    def _json_shape(scope, body: bytes) -> OCRError | None:
        """A JSON body whose structure no request of this API has: more objects and arrays, or more
        keys, than MAX_JSON_CONTAINERS / MAX_JSON_KEYS (counted on the bytes, in C, before parsing).
        Parsing ``[{},{},...]`` costs about 24 times its size and 200,000 unknown keys a validation
        error each; under the caps a body parses into about its own size (its strings), which the
        body's reservation covers. Multipart uploads are not JSON: not counted."""
        if (_header(scope, b"content-type") or "").lower().startswith("multipart/"):
            return None
        containers = body.count(b"{") + body.count(b"[")
        keys = body.count(b":")
        if containers > MAX_JSON_CONTAINERS or keys > MAX_JSON_KEYS:
            return PayloadTooLarge(
                f"the JSON body has {containers} objects and arrays and up to {keys} keys; a request holds at most "
                f"{MAX_JSON_CONTAINERS} and {MAX_JSON_KEYS}")
        return None

    @staticmethod
    def _malformed(scope) -> OCRError | None:
        """A path with control characters (e.g. a decoded %0A) or a body framed twice (Content-Length
        and Transfer-Encoding, RFC 9112 6.3): refused as they are, never routed or read."""
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in scope["path"]):
            return BadRequest("the request path holds control characters")
        names = {k.lower() for k, _ in scope.get("headers") or ()}
        if b"content-length" in names and b"transfer-encoding" in names:
            return BadRequest("a request may not carry both Content-Length and Transfer-Encoding")
        return None

    @staticmethod
    def _no_body_route(scope) -> OCRError:
        """A POST to a path that takes no body: 405 where the path exists for other methods, else 404."""
        app = scope.get("app")
        for r in getattr(app, "routes", ()):
            match, _ = r.matches(scope)
            if match != Match.NONE:  # PARTIAL: the path is a route's, for other methods
                return MethodNotAllowed("this path does not take POST")
        return NotFound("no such route")

    @staticmethod
    def _count(render: Renderer, err: OCRError) -> JSONResponse:
        metrics.count_refusal(err)
        return render(err)

    @staticmethod
    async def _reject(scope, receive, send, response: JSONResponse) -> None:
        response.headers["connection"] = "close"  # the unread body must not be taken for the next request
        await response(scope, receive, send)
