"""A request whose body is parsed in a worker thread, not on the event loop.

The ingress gate has already read and bounded the body (its size, and at most
``MAX_JSON_CONTAINERS`` objects and arrays and ``MAX_JSON_KEYS`` keys, counted on the bytes), so what
is left of parsing is copying: about 40 ms for 20 MiB, JSON or multipart, which twenty uploads at
once would take from the event loop back to back. Both run in a thread of the server's pool
(``run_in_threadpool``); validation of the parsed object (a few fields) stays with FastAPI. Every
body-taking route's class (``api.errors.EnvelopeRoute``) hands its handler this request.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request


class ThreadParsedRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            self._json = await run_in_threadpool(json.loads, body)
        return self._json

    async def _get_form(self, *, max_files: int | float = 1000, max_fields: int | float = 1000,
                        max_part_size: int = 1024 * 1024) -> FormData:
        """A multipart body parsed in a worker thread, from the bytes the gate has read; any other
        form is Starlette's own."""
        if self._form is None and self.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            body = await self.body()
            headers = self.headers

            async def chunks():
                yield body
                yield b""

            def parse() -> FormData:
                parser = MultiPartParser(headers, chunks(), max_files=max_files, max_fields=max_fields,
                                         max_part_size=max_part_size)
                return asyncio.run(parser.parse())

            try:
                self._form = await run_in_threadpool(parse)
            except MultiPartException as exc:
                raise HTTPException(status_code=400, detail=exc.message) from None
        return await super()._get_form(max_files=max_files, max_fields=max_fields, max_part_size=max_part_size)
