"""The original API, for clients already written against it.

``POST /image_label?key=<token>`` with ``{"base64string": "<base64>"}`` answers
``{"Ocr_Output": [line, ...]}``. The value may arrive wrapped as ``b'...'`` (a Python client
that sent ``str(base64.b64encode(data))``). A missing or wrong key answers 401 with exactly the
body those clients expect. The ``key`` query value is redacted wherever a URL is logged.
"""

from __future__ import annotations

import asyncio
import re

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ...errors import OCRError
from ...imaging import decode_base64, decode_image
from ...pipeline import PipelineOptions
from ...schemas import ErrorResponse, LegacyRequest, LegacyResponse
from ...service import OCRService
from ..deps import get_service

router = APIRouter(tags=["compatibility"])

AUTH_ERROR_BODY = {"response": {"ProcessType": "F", "ErrorMessage": "Authentification error"}}
_WRAPPED = re.compile(r"""^b(['"])(.*)\1$""", re.DOTALL)


class LegacyAuthError(OCRError):
    status_code = 401
    code = "unauthorized"


def legacy_auth_response(_: Request, __: Exception) -> JSONResponse:
    return JSONResponse(AUTH_ERROR_BODY, status_code=401)


def require_key(request: Request) -> str:
    identity = request.app.state.tokens.identify(request.query_params.get("key"))
    if identity is None:
        raise LegacyAuthError("Authentification error")
    return identity


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
async def image_label(body: LegacyRequest, request: Request, identity: str = Depends(require_key),
                      service: OCRService = Depends(get_service)) -> LegacyResponse:
    """Text lines of one image, in reading order (the original API)."""

    async def job():
        data = await asyncio.to_thread(decode_base64, unwrap(body.base64string), "base64string")
        img = await asyncio.to_thread(decode_image, data, service.settings.max_image_pixels)
        return await service.ocr_image(img, PipelineOptions())

    result = await request.app.state.admission.run(job, identity)
    return LegacyResponse(Ocr_Output=[ln.text for ln in result.lines])
