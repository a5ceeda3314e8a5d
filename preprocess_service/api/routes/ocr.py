from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from ...schemas import ErrorResponse, OCRRequest, OCRResponse
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
