"""The native API: /v1/ocr (one image), /v1/ocr/batch (several), /v1/ocr/upload (multipart)."""

from __future__ import annotations

import json

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import ValidationError

from ...errors import InvalidRequest
from ...options import RequestOptions
from ...schemas import ErrorResponse, OCRBatchRequest, OCRBatchResponse, OCROptions, OCRRequest, OCRResponse
from ...service import Source
from ..deps import Identity, ServiceDep
from ..errors import EnvelopeRoute

router = APIRouter(tags=["ocr"], route_class=EnvelopeRoute)

_ERRORS: dict[int | str, dict] = {
    400: {"model": ErrorResponse, "description": "Invalid base64, or a corrupt or truncated image."},
    401: {"model": ErrorResponse, "description": "Missing or invalid bearer token."},
    413: {"model": ErrorResponse, "description": "Body over the size limit, or more pixels than allowed."},
    415: {"model": ErrorResponse, "description": "Not an image in a supported format."},
    422: {"model": ErrorResponse, "description": "Missing, empty or invalid fields."},
    429: {"model": ErrorResponse, "description": "Per-token rate limit; see Retry-After."},
    503: {"model": ErrorResponse, "description": "At capacity, past the deadline, shutting down, or backend "
          "unavailable; see Retry-After."},
}


def request_options(req: OCROptions) -> RequestOptions:
    return RequestOptions(**req.model_dump(include=set(RequestOptions.__dataclass_fields__)))


@router.post("/v1/ocr", response_model=OCRResponse, responses=_ERRORS)
async def ocr(req: OCRRequest, identity: Identity, service: ServiceDep) -> OCRResponse:
    """Every line of text in the image, with its box and confidence, in reading order."""
    done = await service.process([Source(req.image)], request_options(req), visualize=req.visualize)
    return OCRResponse.of(done.pages[0])


@router.post("/v1/ocr/batch", response_model=OCRBatchResponse, responses=_ERRORS)
async def ocr_batch(req: OCRBatchRequest, identity: Identity, service: ServiceDep) -> OCRBatchResponse:
    """Several images (or PDFs) in one JSON request; one result per image or page, in order."""
    sources = [Source(v, kind="auto", field=f"images[{i}]") for i, v in enumerate(req.images)]
    done = await service.process(sources, request_options(req), visualize=req.visualize)
    return OCRBatchResponse(results=[OCRResponse.of(p) for p in done.pages])


@router.post("/v1/ocr/upload", responses={**_ERRORS, 200: {"description": "One file: the /v1/ocr result; "
             "several files or a multi-page PDF: {\"results\": [...]}"}})
async def ocr_upload(identity: Identity, service: ServiceDep,
                     file: list[UploadFile] = File(..., description="image or PDF; repeat for several"),
                     options: str | None = Form(None, description="JSON object of /v1/ocr options")):
    """Multipart upload (form field `file`, repeatable). One image answers the same JSON as
    /v1/ocr; several files or PDF pages answer {"results": [...]}."""
    try:
        opts = OCROptions.model_validate(json.loads(options) if options else {})
    except (ValueError, ValidationError):
        raise InvalidRequest("options must be a JSON object of valid /v1/ocr options") from None
    sources = [Source(f.read, encoding="raw", kind="auto", field="file", name=f.filename) for f in file]
    done = await service.process(sources, request_options(opts), visualize=opts.visualize)
    pages = [OCRResponse.of(p) for p in done.pages]
    if len(pages) == 1 and pages[0].page is None:
        return pages[0]
    return OCRBatchResponse(results=pages)
