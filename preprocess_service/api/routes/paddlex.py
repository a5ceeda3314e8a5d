"""The PaddleX OCR serving API, for clients written against PaddleX / PaddleOCR serving.

``POST /ocr`` with ``{"file": "<base64>", "fileType": 1 | 0, ...PaddleX settings}`` answers
PaddleX's envelope ``{"logId", "errorCode": 0, "errorMsg": "Success", "result": {"ocrResults":
[{"prunedResult": {...}, "ocrImage"?}], "dataInfo": {...}}}``. Every error comes in the same
envelope with the HTTP status as ``errorCode`` (``api.errors.paddlex``). Authentication as for
/v1/ocr (Bearer).
"""

from __future__ import annotations

from fastapi import APIRouter

from ...errors import InvalidRequest
from ...logs import request_id
from ...options import RequestOptions
from ...results import Processed
from ...schemas import PaddleXOCRPage, PaddleXOCRRequest, PaddleXPrunedResult, PaddleXResponse, PaddleXResult
from ...service import Source
from ..deps import Identity, ServiceDep
from ..errors import PaddleXRoute

router = APIRouter(tags=["compatibility"], route_class=PaddleXRoute)


def _axis_box(poly: list[list[int]]) -> list[int]:
    xs, ys = [p[0] for p in poly], [p[1] for p in poly]
    return [min(xs), min(ys), max(xs), max(ys)]


def _request(body: PaddleXOCRRequest, url_input_enabled: bool) -> tuple[Source, RequestOptions]:
    """PaddleX's request -> our source and options; what we cannot do is a 422."""
    is_url = body.file.startswith(("http://", "https://"))
    if is_url and not url_input_enabled:
        raise InvalidRequest("URL input is not enabled on this server; send the file as base64")
    if body.useDocOrientationClassify or body.useDocUnwarping:
        raise InvalidRequest("document orientation and unwarping models are not available on this server")
    if body.textDetLimitType == "min":
        raise InvalidRequest("textDetLimitType 'min' is not supported; use 'max'")
    if body.fileType not in (None, 0, 1):
        raise InvalidRequest("fileType must be 0 (PDF) or 1 (image)")
    kind = {None: "auto", 0: "pdf", 1: "image"}[body.fileType]
    source = Source(body.file, encoding="url" if is_url else "base64", kind=kind, field="file")  # type: ignore[arg-type]
    opts = RequestOptions(
        det_limit_side_len=body.textDetLimitSideLen, det_thresh=body.textDetThresh,
        det_box_thresh=body.textDetBoxThresh, det_unclip_ratio=body.textDetUnclipRatio,
        rec_score_thresh=body.textRecScoreThresh, use_textline_orientation=body.useTextlineOrientation,
    )
    return source, opts


def _response(done: Processed) -> PaddleXResponse:
    opts = done.options
    text_det_params = {
        "limit_side_len": opts.det_limit_side_len, "limit_type": "max", "max_side_limit": opts.det_max_side_limit,
        "thresh": opts.det_thresh, "box_thresh": opts.det_box_thresh, "unclip_ratio": opts.det_unclip_ratio,
    }
    pages = done.pages
    ocr_results = []
    for res in pages:
        polys = [ln.box for ln in res.lines]
        ocr_results.append(PaddleXOCRPage(
            prunedResult=PaddleXPrunedResult(
                model_settings={"use_doc_preprocessor": False, "use_textline_orientation": res.models.cls is not None},
                text_det_params=text_det_params, text_rec_score_thresh=opts.rec_score_thresh,
                rec_texts=[ln.text for ln in res.lines], rec_scores=[ln.confidence for ln in res.lines],
                rec_polys=polys, rec_boxes=[_axis_box(p) for p in polys], dt_polys=polys,
                textline_orientation_angles=[-1] * len(polys),
            ),
            ocrImage=res.visualization,
        ))
    if done.documents[0].kind == "image":
        data_info: dict = {"width": pages[0].width, "height": pages[0].height, "type": "image"}
    else:
        data_info = {"numPages": len(pages), "pages": [{"width": r.width, "height": r.height} for r in pages], "type": "pdf"}
    return PaddleXResponse(logId=request_id.get() or "", result=PaddleXResult(ocrResults=ocr_results, dataInfo=data_info))


@router.post("/ocr", response_model=PaddleXResponse, response_model_exclude_none=True)
async def paddlex_ocr(body: PaddleXOCRRequest, identity: Identity, service: ServiceDep) -> PaddleXResponse:
    """OCR of an image or a PDF in PaddleX's serving format."""
    source, opts = _request(body, bool(service.settings.url_allowed_hosts))
    done = await service.process([source], opts, visualize=bool(body.visualize))
    return _response(done)
