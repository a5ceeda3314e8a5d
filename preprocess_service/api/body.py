"""A request whose JSON body is parsed in a worker thread, not on the event loop.

The ingress gate has already bounded the body (its size, and at most ``MAX_JSON_CONTAINERS``
objects and arrays and ``MAX_JSON_KEYS`` keys, counted on the bytes), so what is left of parsing is
copying its strings: about 40 ms for a 20 MiB base64 image. That runs in a thread of the
server's pool (``run_in_threadpool``), and validation of the parsed object (a few fields) stays
with FastAPI. Every body-taking route's class (``api.errors.EnvelopeRoute``) hands its handler
this request.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request


class ThreadParsedRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            self._json = await run_in_threadpool(json.loads, body)
        return self._json
