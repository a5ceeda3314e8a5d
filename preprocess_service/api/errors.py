"""Every failure written out in its contract's envelope: one renderer per envelope.

- ``native``: ``{"error": {"code", "message"}}`` for /v1/* and everything else;
- ``legacy``: the original API's exact 401 body, native otherwise;
- ``paddlex``: PaddleX's ``{"logId", "errorCode", "errorMsg"}`` with the HTTP status as errorCode.

The error types themselves all live in ``preprocess_service.errors``; framework exceptions
(validation, unknown route) are turned into those types first (``as_ocr_error``), so every
envelope says the same thing. Never echo client data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import metrics
from ..errors import BackendError, BackendUnavailable, HTTPFailure, InternalError, InvalidRequest, OCRError, Unauthorized
from ..logs import request_id
from .body import ThreadParsedRequest
from .deps import get_context

log = logging.getLogger(__name__)

LEGACY_AUTH_BODY = {"response": {"ProcessType": "F", "ErrorMessage": "Authentification error"}}


MAX_VALIDATION_ERRORS = 5
MAX_NAME_CHARS = 40


def _name(part: object) -> str:
    text = str(part)
    return text if len(text) <= MAX_NAME_CHARS else text[:MAX_NAME_CHARS] + "..."


def describe_validation(exc: RequestValidationError) -> str:
    """Where and what, never the offending value (it may be an image or a token): the first few
    problems, each field name cut short (a name is client text too), and how many more there are."""
    parts = []
    errors = exc.errors()
    for err in errors[:MAX_VALIDATION_ERRORS]:
        loc = ".".join(_name(x) for x in err.get("loc", ()) if x != "body") or "body"
        kind = err.get("type", "")
        if kind == "missing":
            parts.append(f"{loc}: field required")
        elif kind == "json_invalid":
            parts.append("body: not valid JSON")
        elif kind == "extra_forbidden":
            parts.append(f"{loc}: unknown field")
        elif kind in ("model_attributes_type", "dict_type"):
            parts.append(f"{loc or 'body'}: must be a JSON object")
        else:
            parts.append(f"{loc}: {err.get('msg', 'invalid value')}")
    if len(errors) > MAX_VALIDATION_ERRORS:
        parts.append(f"and {len(errors) - MAX_VALIDATION_ERRORS} more")
    return "; ".join(parts) or "invalid request"


def as_ocr_error(exc: Exception) -> OCRError:
    if isinstance(exc, OCRError):
        return exc
    if isinstance(exc, RequestValidationError):
        return InvalidRequest(describe_validation(exc))
    if isinstance(exc, StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        return HTTPFailure(exc.status_code, message, getattr(exc, "headers", None))
    return InternalError()


def native(err: OCRError) -> JSONResponse:
    return JSONResponse({"error": {"code": err.code, "message": err.message}}, status_code=err.status_code,
                        headers=err.headers or None)


def legacy(err: OCRError) -> JSONResponse:
    if isinstance(err, Unauthorized):
        return JSONResponse(LEGACY_AUTH_BODY, status_code=401)
    return native(err)


def paddlex(err: OCRError) -> JSONResponse:
    body = {"logId": request_id.get() or "", "errorCode": err.status_code, "errorMsg": err.message}
    return JSONResponse(body, status_code=err.status_code, headers=err.headers or None)


def _answer(request: Request, exc: Exception, render: Callable[[OCRError], JSONResponse]) -> JSONResponse:
    err = as_ocr_error(exc)
    if isinstance(err, InternalError) and err is not exc:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    if isinstance(err, (BackendUnavailable, BackendError)):  # counted in whatever envelope it is answered
        metrics.BACKEND_ERRORS.labels(get_context(request).settings.backend, err.code).inc()
    metrics.count_refusal(err)
    return render(err)


class EnvelopeRoute(APIRoute):
    """A body-taking route: its errors (auth and validation included) are written by ``render``,
    and its JSON body is parsed in a worker thread (``api.body``)."""

    render: Callable[[OCRError], JSONResponse] = staticmethod(native)

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def wrapped(request: Request) -> Response:
            try:
                return await handler(ThreadParsedRequest(request.scope, request.receive, request._send))
            except Exception as exc:  # every failure gets this contract's envelope
                return _answer(request, exc, type(self).render)

        return wrapped


class LegacyRoute(EnvelopeRoute):
    render = staticmethod(legacy)


class PaddleXRoute(EnvelopeRoute):
    render = staticmethod(paddlex)


def install(app: FastAPI) -> None:
    """Native envelope for everything outside an EnvelopeRoute (unknown paths, middleware)."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return _answer(request, exc, native)

    for exc_type in (OCRError, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(exc_type, handler)
