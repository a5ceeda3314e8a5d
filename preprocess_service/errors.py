"""Errors are data: every client-facing failure is one exception type, and all of them live here.

Each type carries its HTTP status, a stable code and headers (``Retry-After``,
``WWW-Authenticate``). How an error is written out depends on the API contract: one renderer
per envelope (native, legacy, PaddleX) in ``api.errors``. Messages name the problem and never
echo client data (tokens, image bytes).
"""

from __future__ import annotations

# The reasons of ocr_rejected_total, in two kinds: the service's capacity or state (alerted on by
# OCRRequestsRejected, except during rollouts and start-up), and the client's own fault (alerted on
# by OCRClientRequestsRejected). Every refusal's ``reason`` is one of them (tests/unit/test_reasons.py).
CAPACITY_REASONS = ("overloaded", "memory_budget", "deadline_exceeded", "backend_unavailable", "shutting_down", "not_ready")
ROLLOUT_REASONS = ("shutting_down", "not_ready")  # expected while pods are replaced or start
CLIENT_REASONS = ("unauthorized", "payload_too_large", "request_timeout", "rate_limited")


class OCRError(Exception):
    status_code: int = 500
    code: str = "internal_error"
    reason: str | None = None  # set on refusals counted in ocr_rejected_total{reason}

    def __init__(self, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


# --- 400: the request is malformed ---
class InvalidBase64(OCRError):
    status_code = 400
    code = "invalid_base64"


class CorruptImage(OCRError):
    """The bytes start like a supported image but cannot be decoded (e.g. truncated)."""

    status_code = 400
    code = "corrupt_image"


# --- 401 ---
class Unauthorized(OCRError):
    status_code = 401
    code = "unauthorized"
    reason = "unauthorized"

    def __init__(self, message: str = "missing or invalid bearer token"):
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


# --- 408 ---
class RequestTimeout(OCRError):
    """The request body did not arrive within the read timeouts (a slow or stalled client)."""

    status_code = 408
    code = "request_timeout"
    reason = "request_timeout"


# --- 413 ---
class PayloadTooLarge(OCRError):
    status_code = 413
    code = "payload_too_large"
    reason = "payload_too_large"


class ImageTooLarge(OCRError):
    status_code = 413
    code = "image_too_large"


# --- 415 ---
class UnsupportedImageFormat(OCRError):
    status_code = 415
    code = "unsupported_media_type"


# --- 422 ---
class InvalidRequest(OCRError):
    status_code = 422
    code = "invalid_request"


class EmptyImage(OCRError):
    status_code = 422
    code = "empty_image"


class DocumentTooComplex(OCRError):
    """A PDF page that did not render within the time or memory a page of its size may take."""

    status_code = 422
    code = "document_too_complex"


# --- 503: our side cannot serve right now ---
class BackendUnavailable(OCRError):
    status_code = 503
    code = "backend_unavailable"
    reason = "backend_unavailable"

    def __init__(self, message: str, retry_after_s: int = 1):
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class NotReady(BackendUnavailable):
    code = "not_ready"
    reason = "not_ready"


class Overloaded(BackendUnavailable):
    """All in-flight slots busy and the queue full, or no slot within the queue timeout."""

    code = "overloaded"
    reason = "overloaded"


class MemoryBudgetBusy(Overloaded):
    """The memory budget is reserved by other requests (the client sees ``overloaded``)."""

    reason = "memory_budget"


class DeadlineExceeded(BackendUnavailable):
    code = "deadline_exceeded"
    reason = "deadline_exceeded"


class ShuttingDown(BackendUnavailable):
    code = "shutting_down"
    reason = "shutting_down"


# --- 429 ---
class RateLimited(OCRError):
    status_code = 429
    code = "rate_limited"
    reason = "rate_limited"

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


# --- other HTTP-level failures (unknown route, wrong method), from the framework ---
class HTTPFailure(OCRError):
    def __init__(self, status_code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message, headers=headers)
        self.status_code = status_code
        self.code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(status_code, "http_error")


class InternalError(OCRError):
    def __init__(self, message: str = "internal error; the request was not processed"):
        super().__init__(message)


class BackendError(OCRError):
    """The inference server answered with an error that is not about availability."""

    status_code = 502
    code = "backend_error"
