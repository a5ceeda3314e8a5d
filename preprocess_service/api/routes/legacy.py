"""The original API, for clients already written against it.

``POST /image_label?key=<token>`` with ``{"base64string": "<base64>"}`` answers
``{"Ocr_Output": [line, ...]}``. The value may arrive wrapped as ``b'...'`` (a Python client
that sent ``str(base64.b64encode(data))``). A missing or wrong key answers 401 with exactly the
body those clients expect (``api.errors.legacy``). The ``key`` query value is redacted wherever
a URL is logged.
"""

from __future__ import annotations

import re

from fastapi import APIRouter

from ...options import RequestOptions
from ...schemas import ErrorResponse, LegacyRequest, LegacyResponse
from ...service import Source
from ..deps import KeyIdentity, ServiceDep
from ..errors import LegacyRoute

router = APIRouter(tags=["compatibility"], route_class=LegacyRoute)

_WRAPPED = re.compile(r"""^b(['"])(.*)\1$""", re.DOTALL)


def unwrap(value: str) -> str:
    """``b'iVBOR...'`` -> ``iVBOR...``: what str() of a Python bytes object looks like."""
    m = _WRAPPED.match(value.strip())
    return m.group(2) if m else value


@router.post(
    "/image_label",
    response_model=LegacyResponse,
    responses={401: {"description": "Missing or wrong key: the original API's exact error body."},
               400: {"model": ErrorResponse}, 413: {"model": ErrorResponse}, 415: {"model": ErrorResponse},
               422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
async def image_label(body: LegacyRequest, identity: KeyIdentity, service: ServiceDep) -> LegacyResponse:
    """Text lines of one image, in reading order (the original API)."""
    source = Source(unwrap(body.base64string), field="base64string")
    done = await service.process([source], RequestOptions())
    return LegacyResponse(Ocr_Output=[ln.text for ln in done.pages[0].lines])
