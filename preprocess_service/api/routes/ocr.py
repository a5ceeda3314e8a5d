from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from pydantic import ValidationError

from ...errors import InvalidRequest, PayloadTooLarge
from ...imaging import decode_base64
from ...schemas import ErrorResponse, OCRBatchRequest, OCRBatchResponse, OCROptions, OCRRequest, OCRResponse
from ...service import OCRService
from ..deps import get_service, require_token

router = APIRouter(tags=["ocr"])

_ERRORS = {
    400: {"model": ErrorResponse, "description": "Invalid base64, or a corrupt or truncated image."},
    401: {"model": ErrorResponse, "description": "Missing or invalid bearer token."},
    413: {"model": ErrorResponse, "description": "Body over the size limit, or more pixels than allowed."},
    415: {"model": ErrorResponse, "description": "Not an image in a supported format."},
    422: {"model": ErrorResponse, "description": "Missing, empty or invalid fields."},
    429: {"model": ErrorResponse, "description": "Per-token rate limit; see Retry-After."},
    503: {"model": ErrorResponse, "description": "At capacity, past the deadline, shutting down, or backend "
          "unavailable; see Retry-After."},
}


@router.post("/v1/ocr", response_model=OCRResponse, responses=_ERRORS)
async def ocr(req: OCRRequest, request: Request, identity: str = Depends(require_token),
              service: OCRService = Depends(get_service)) -> OCRResponse:
    """Every line of text in the image, with its box and confidence, in reading order."""
    return await request.app.state.admission.run(lambda: service.ocr(req), identity)


@router.post("/v1/ocr/batch", response_model=OCRBatchResponse, responses=_ERRORS)
async def ocr_batch(req: OCRBatchRequest, request: Request, identity: str = Depends(require_token),
                    service: OCRService = Depends(get_service)) -> OCRBatchResponse:
    """Several images (or PDFs) in one JSON request; one result per image or page, in order."""
    if len(req.images) > service.settings.max_images_per_request:
        raise PayloadTooLarge(f"more than the {service.settings.max_images_per_request} images allowed per request")

    async def job():
        docs = [(None, await asyncio.to_thread(decode_base64, v, f"images[{i}]")) for i, v in enumerate(req.images)]
        return await service.ocr_documents(docs, req)

    return OCRBatchResponse(results=await request.app.state.admission.run(job, identity))


@router.post("/v1/ocr/upload", responses={**_ERRORS, 200: {"description": "One file: the /v1/ocr result; "
             "several files or a multi-page PDF: {\"results\": [...]}"}})
async def ocr_upload(request: Request, file: list[UploadFile] = File(..., description="image or PDF; repeat for several"),
                     options: str | None = Form(None, description="JSON object of /v1/ocr options"),
                     identity: str = Depends(require_token), service: OCRService = Depends(get_service)):
    """Multipart upload (form field `file`, repeatable). One image answers the same JSON as
    /v1/ocr; several files or PDF pages answer {"results": [...]}."""
    try:
        opts = OCROptions.model_validate(json.loads(options) if options else {})
    except (ValueError, ValidationError):
        raise InvalidRequest("options must be a JSON object of valid /v1/ocr options") from None
    if len(file) > service.settings.max_images_per_request:
        raise PayloadTooLarge(f"more than the {service.settings.max_images_per_request} files allowed per request")
    docs = [(f.filename, await f.read()) for f in file]

    async def job():
        return await service.ocr_documents(docs, opts)

    results = await request.app.state.admission.run(job, identity)
    if len(results) == 1 and results[0].page is None:
        return results[0]
    return OCRBatchResponse(results=results)
