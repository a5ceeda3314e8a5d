"""Map every failure to a status and the one JSON error body. Never echo client data."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import metrics
from ..errors import BackendError, BackendUnavailable, OCRError

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def count_backend_error(request: Request, exc: OCRError) -> None:
    """Backend failures are counted wherever they are answered, in whatever envelope."""
    if isinstance(exc, (BackendUnavailable, BackendError)):
        metrics.BACKEND_ERRORS.labels(request.app.state.settings.backend, exc.code).inc()


def _describe_validation(exc: RequestValidationError) -> str:
    """Where and what, never the offending value (it may be an image or a token)."""
    parts = []
    for err in exc.errors()[:10]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
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
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    @app.exception_handler(OCRError)
    async def _ocr_error(request: Request, exc: OCRError):
        count_backend_error(request, exc)
        return error_response(exc.status_code, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        return error_response(422, "invalid_request", _describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error; the request was not processed")
