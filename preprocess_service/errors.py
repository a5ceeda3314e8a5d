"""Errors are data: every client-facing failure is one exception type, and all of them live here.

Each type carries a stable ``code``, a message and, where retrying later helps, ``retry_after_s``;
refusals counted in ``ocr_rejected_total`` carry a ``reason``. Nothing here knows HTTP: the one
table from code to status, and the headers (``Retry-After``, ``WWW-Authenticate``), are in
``api.errors``, which writes each error in its contract's envelope (native, legacy, PaddleX).
Messages name the problem and never echo client data (tokens, image bytes).
"""

from __future__ import annotations

# The reasons of ocr_rejected_total, in two kinds: the service's capacity or state (alerted on by
# OCRRequestsRejected, except during rollouts and start-up), and the client's own fault (alerted on
# by OCRClientRequestsRejected). Every refusal's ``reason`` is one of them (tests/unit/test_reasons.py).
CAPACITY_REASONS = ("overloaded", "memory_budget", "deadline_exceeded", "backend_unavailable", "shutting_down", "not_ready")
ROLLOUT_REASONS = ("shutting_down", "not_ready")  # expected while pods are replaced or start
CLIENT_REASONS = ("unauthorized", "payload_too_large", "request_timeout", "rate_limited")


class OCRError(Exception):
    code: str = "internal_error"
    reason: str | None = None  # set on refusals counted in ocr_rejected_total{reason}

    def __init__(self, message: str, *, retry_after_s: int | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s  # when a retry may succeed, in seconds


# --- the input is malformed ---
class InvalidBase64(OCRError):
    code = "invalid_base64"


class CorruptImage(OCRError):
    """The bytes start like a supported image but cannot be decoded (e.g. truncated)."""

    code = "corrupt_image"


# --- who is asking ---
class Unauthorized(OCRError):
    code = "unauthorized"
    reason = "unauthorized"

    def __init__(self, message: str = "missing or invalid bearer token"):
        super().__init__(message)


# --- too slow ---
class RequestTimeout(OCRError):
    """The request body did not arrive within the read timeouts (a slow or stalled client)."""

    code = "request_timeout"
    reason = "request_timeout"


# --- too large ---
class PayloadTooLarge(OCRError):
    code = "payload_too_large"
    reason = "payload_too_large"


class ImageTooLarge(OCRError):
    code = "image_too_large"


# --- not a supported format ---
class UnsupportedImageFormat(OCRError):
    code = "unsupported_media_type"


# --- well-formed, but not a valid request ---
class InvalidRequest(OCRError):
    code = "invalid_request"


class EmptyImage(OCRError):
    code = "empty_image"


class DocumentTooComplex(OCRError):
    """A PDF page that did not render within the time or memory a page of its size may take."""

    code = "document_too_complex"


# --- our side cannot serve right now (retry later) ---
class BackendUnavailable(OCRError):
    code = "backend_unavailable"
    reason = "backend_unavailable"

    def __init__(self, message: str, retry_after_s: int = 1):
        super().__init__(message, retry_after_s=retry_after_s)


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


# --- too often ---
class RateLimited(OCRError):
    code = "rate_limited"
    reason = "rate_limited"

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message, retry_after_s=retry_after_s)


# --- the request as a whole: malformed, to no route, with a method the route does not take ---
class BadRequest(OCRError):
    code = "bad_request"


class NotFound(OCRError):
    code = "not_found"


class MethodNotAllowed(OCRError):
    code = "method_not_allowed"

    def __init__(self, message: str, allowed: str | None = None):
        super().__init__(message)
        self.allowed = allowed  # the methods the path takes, e.g. "POST"


class InternalError(OCRError):
    def __init__(self, message: str = "internal error; the request was not processed"):
        super().__init__(message)


class BackendError(OCRError):
    """The inference server answered with an error that is not about availability."""

    code = "backend_error"
