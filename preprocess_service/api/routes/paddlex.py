"""The PaddleX OCR serving API, for clients written against PaddleX / PaddleOCR serving.

``POST /ocr`` with ``{"file": "<base64>", "fileType": 1 | 0, ...PaddleX settings}`` answers
PaddleX's envelope ``{"logId", "errorCode": 0, "errorMsg": "Success", "result": {"ocrResults":
[{"prunedResult": {...}, "ocrImage"?}], "dataInfo": {...}}}``. Every error comes in the same
envelope with the HTTP status as ``errorCode``. Authentication as for /v1/ocr (Bearer).
"""

from __future__ import annotations

import asyncio
import base64
from typing import Callable

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from ... import fetch, visualize
from ...documents import load_pages
from ...errors import InvalidRequest, OCRError
from ...imaging import decode_base64
from ...logs import request_id
from ...pipeline import PipelineOptions
from ...schemas import (
    PaddleXOCRPage,
    PaddleXOCRRequest,
    PaddleXPrunedResult,
    PaddleXResponse,
    PaddleXResult,
)
from ..deps import get_service, require_token
from ..errors import _describe_validation, count_backend_error


def envelope_error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    body = {"logId": request_id.get() or "", "errorCode": status, "errorMsg": message}
    return JSONResponse(body, status_code=status, headers=headers)


class PaddleXRoute(APIRoute):
    """Errors of these routes, auth and validation included, in PaddleX's envelope."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def wrapped(request: Request) -> Response:
            try:
                return await handler(request)
            except OCRError as exc:
                count_backend_error(request, exc)
                return envelope_error(exc.status_code, exc.message, exc.headers)
            except RequestValidationError as exc:
                return envelope_error(422, _describe_validation(exc))
            except StarletteHTTPException as exc:
                return envelope_error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

        return wrapped


router = APIRouter(tags=["compatibility"], route_class=PaddleXRoute)


def _axis_box(poly: list[list[int]]) -> list[int]:
    xs, ys = [p[0] for p in poly], [p[1] for p in poly]
    return [min(xs), min(ys), max(xs), max(ys)]


@router.post("/ocr", response_model=PaddleXResponse, response_model_exclude_none=True)
async def paddlex_ocr(body: PaddleXOCRRequest, request: Request) -> PaddleXResponse:
    """OCR of an image or a PDF in PaddleX's serving format."""
    identity = require_token(request)
    service = get_service(request)
    s = service.settings
    is_url = body.file.startswith(("http://", "https://"))
    if is_url and not s.url_allowed_hosts:
        raise InvalidRequest("URL input is not enabled on this server; send the file as base64")
    if body.useDocOrientationClassify or body.useDocUnwarping:
        raise InvalidRequest("document orientation and unwarping models are not available on this server")
    if body.textDetLimitType == "min":
        raise InvalidRequest("textDetLimitType 'min' is not supported; use 'max'")
    if body.fileType not in (None, 0, 1):
        raise InvalidRequest("fileType must be 0 (PDF) or 1 (image)")
    file_type = {None: "auto", 0: "pdf", 1: "image"}[body.fileType]
    opts = PipelineOptions(
        det_limit_side_len=body.textDetLimitSideLen, det_thresh=body.textDetThresh,
        det_box_thresh=body.textDetBoxThresh, det_unclip_ratio=body.textDetUnclipRatio,
        rec_score_thresh=body.textRecScoreThresh, use_textline_orientation=body.useTextlineOrientation,
    )

    async def job():
        if is_url:
            data = await fetch.fetch(body.file, s.url_allowed_hosts, s.max_body_bytes)
        else:
            data = await asyncio.to_thread(decode_base64, body.file, "file")
        kind, pages = await asyncio.to_thread(load_pages, data, file_type, s.max_pdf_pages, s.max_image_pixels)
        results = []
        for page in pages:
            res = await service.ocr_image(page, opts)
            image = None
            if body.visualize:
                jpeg = await asyncio.to_thread(visualize.draw, page, [ln.box for ln in res.lines], [ln.text for ln in res.lines])
                image = base64.b64encode(jpeg).decode()
            results.append((page, res, image))
        return kind, results

    kind, pages = await request.app.state.admission.run(job, identity)
    policy, params, score_thresh = service.pipeline.effective_settings(opts)
    text_det_params = {
        "limit_side_len": policy.limit_side_len, "limit_type": "max", "max_side_limit": policy.max_side_limit,
        "thresh": params.thresh, "box_thresh": params.box_thresh, "unclip_ratio": params.unclip_ratio,
    }
    ocr_results = []
    for _page, res, image in pages:
        polys = [ln.box for ln in res.lines]
        used_cls = res.model.cls is not None
        ocr_results.append(PaddleXOCRPage(
            prunedResult=PaddleXPrunedResult(
                model_settings={"use_doc_preprocessor": False, "use_textline_orientation": used_cls},
                text_det_params=text_det_params, text_rec_score_thresh=score_thresh,
                rec_texts=[ln.text for ln in res.lines], rec_scores=[ln.confidence for ln in res.lines],
                rec_polys=polys, rec_boxes=[_axis_box(p) for p in polys], dt_polys=polys,
                textline_orientation_angles=[-1] * len(polys),
            ),
            ocrImage=image,
        ))
    if kind == "image":
        data_info = {"width": pages[0][1].width, "height": pages[0][1].height, "type": "image"}
    else:
        data_info = {"numPages": len(pages), "pages": [{"width": r.width, "height": r.height} for _, r, _ in pages], "type": "pdf"}
    return PaddleXResponse(logId=request_id.get() or "", result=PaddleXResult(ocrResults=ocr_results, dataInfo=data_info))
