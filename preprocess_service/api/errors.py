"""Every failure written out in its contract's envelope: one renderer per envelope.

- ``native``: ``{"error": {"code", "message"}}`` for /v1/* and everything else;
- ``legacy``: the original API's exact 401 body, native otherwise;
- ``paddlex``: PaddleX's ``{"logId", "errorCode", "errorMsg"}`` with the HTTP status as errorCode.

The error types themselves all live in ``preprocess_service.errors`` and know nothing of HTTP:
``STATUS`` here is the one table from an error's code to its HTTP status, and ``headers`` adds
``Retry-After`` (from ``retry_after_s``) and the bearer challenge. Framework exceptions
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
from ..errors import (
    BackendError,
    BackendUnavailable,
    BadRequest,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    OCRError,
    PayloadTooLarge,
    Unauthorized,
)
from ..logs import request_id
from .body import ThreadParsedRequest
from .deps import get_context

log = logging.getLogger(__name__)

LEGACY_AUTH_BODY = {"response": {"ProcessType": "F", "ErrorMessage": "Authentification error"}}

# The HTTP status of every error code (tests/unit/test_code_shape.py: every code has one).
STATUS: dict[str, int] = {
    "invalid_base64": 400, "corrupt_image": 400, "bad_request": 400,
    "unauthorized": 401,
    "not_found": 404, "method_not_allowed": 405,
    "request_timeout": 408,
    "payload_too_large": 413, "image_too_large": 413,
    "unsupported_media_type": 415,
    "invalid_request": 422, "empty_image": 422, "document_too_complex": 422,
    "rate_limited": 429,
    "internal_error": 500, "backend_error": 502,
    "backend_unavailable": 503, "not_ready": 503, "overloaded": 503, "deadline_exceeded": 503, "shutting_down": 503,
}


def status_of(err: OCRError) -> int:
    return STATUS[err.code]


def headers_of(err: OCRError) -> dict[str, str] | None:
    headers = {}
    if err.retry_after_s is not None:
        headers["Retry-After"] = str(err.retry_after_s)
    if isinstance(err, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(err, MethodNotAllowed) and err.allowed:
        headers["Allow"] = err.allowed
    return headers or None


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
    if isinstance(exc, StarletteHTTPException):  # the framework's own: routing, multipart parsing
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 405:
            return MethodNotAllowed(message, (getattr(exc, "headers", None) or {}).get("Allow"))
        kind = {404: NotFound, 413: PayloadTooLarge}.get(exc.status_code)
        if kind is not None:
            return kind(message)
        return BadRequest(message) if exc.status_code < 500 else InternalError()
    return InternalError()


def native(err: OCRError) -> JSONResponse:
    return JSONResponse({"error": {"code": err.code, "message": err.message}}, status_code=status_of(err),
                        headers=headers_of(err))


def legacy(err: OCRError) -> JSONResponse:
    if isinstance(err, Unauthorized):
        return JSONResponse(LEGACY_AUTH_BODY, status_code=401)
    return native(err)


def paddlex(err: OCRError) -> JSONResponse:
    body = {"logId": request_id.get() or "", "errorCode": status_of(err), "errorMsg": err.message}
    return JSONResponse(body, status_code=status_of(err), headers=headers_of(err))


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
    its token is checked by the ingress gate from ``auth`` (``bearer``: the Authorization header;
    ``key``: the ``?key=`` query value) before its body is read, and its JSON body is parsed in a
    worker thread (``api.body``). The gate finds these routes in the app's route table: a new
    envelope is a route module with its own subclass, and no list elsewhere."""

    render: Callable[[OCRError], JSONResponse] = staticmethod(native)
    auth: str = "bearer"

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
    auth = "key"


class PaddleXRoute(EnvelopeRoute):
    render = staticmethod(paddlex)


def install(app: FastAPI) -> None:
    """Native envelope for everything outside an EnvelopeRoute (unknown paths, middleware)."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return _answer(request, exc, native)

    for exc_type in (OCRError, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(exc_type, handler)
