"""Request and response schemas of the HTTP API, all in one place."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .results import PageResult


class OCROptions(BaseModel):
    """Per-request overrides of the pipeline defaults. Omitted fields use the service defaults."""

    model_config = ConfigDict(extra="forbid")

    det_limit_side_len: int | None = Field(
        default=None, ge=32, le=8192, description="Longest image side fed to detection, in pixels."
    )
    det_thresh: float | None = Field(default=None, gt=0.0, lt=1.0, description="DB binarization threshold.")
    det_box_thresh: float | None = Field(default=None, gt=0.0, lt=1.0, description="Minimum mean box score.")
    det_unclip_ratio: float | None = Field(default=None, ge=0.5, le=5.0, description="DB box expansion ratio.")
    rec_score_thresh: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Lines with a lower recognition confidence are dropped."
    )
    use_textline_orientation: bool | None = Field(
        default=None, description="Run the 0/180 text-line classifier and turn upside-down lines."
    )
    visualize: bool = Field(default=False, description="Also return the image with boxes and text drawn (base64 JPEG).")


class OCRRequest(OCROptions):
    image: str = Field(
        min_length=1,
        description="The image, base64-encoded (standard or URL-safe alphabet), or a data: URL.",
        examples=["iVBORw0KGgoAAAANSUhEUgAA..."],
    )


class OCRBatchRequest(OCROptions):
    images: list[str] = Field(
        min_length=1, description="Several images (base64 or data: URLs), answered in order; PDFs give one result per page."
    )


class Line(BaseModel):
    text: str
    confidence: float = Field(description="Mean of the per-character maximum probabilities, 0..1.")
    box: list[list[int]] = Field(
        description="Four corner points [x, y] in image pixels, clockwise from top-left."
    )


class ModelInfo(BaseModel):
    backend: str
    det: str
    rec: str
    cls: str | None = Field(description="Text-line orientation classifier, when it ran for this request.")
    execution_providers: dict[str, str] = Field(
        description="The execution provider each model really runs on (e.g. CPUExecutionProvider)."
    )


class OCRResponse(BaseModel):
    lines: list[Line]
    text: str = Field(description="All line texts joined by newlines, in reading order.")
    width: int
    height: int
    model: ModelInfo
    timings_ms: dict[str, float]
    page: int | None = Field(default=None, description="1-based page number, for PDF input")
    source: str | None = Field(default=None, description="the uploaded file's name, for multipart uploads")
    visualization: str | None = Field(default=None, description="base64 JPEG with boxes and text, when asked")

    @classmethod
    def of(cls, page: PageResult) -> OCRResponse:
        """The native envelope of one page (the /v1 routes and `ocr local --json`)."""
        m = page.models
        return cls(
            lines=[Line(text=ln.text, confidence=ln.confidence, box=ln.box) for ln in page.lines],
            text=page.text, width=page.width, height=page.height,
            model=ModelInfo(backend=m.backend, det=m.det, rec=m.rec, cls=m.cls, execution_providers=m.execution_providers),
            timings_ms=page.timings_ms, page=page.page, source=page.source, visualization=page.visualization,
        )


class OCRBatchResponse(BaseModel):
    results: list[OCRResponse] = Field(description="One result per image (per page for PDFs), in order.")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool = Field(description="This pod can answer requests (false only while loading local models or draining).")
    backend: str
    models: dict[str, str | None]
    backend_ready: bool | None = Field(default=None, description="The inference backend serves now.")
    detail: str | None = None
    input_shapes: dict[str, list[list[int]]] | None = Field(
        default=None, description="With shape buckets on: every input shape (batch first) each model can be "
        "sent, fixed at start-up; null when shapes follow the pages.")


# --- the original API (/image_label) -------------------------------------------------------


class LegacyRequest(BaseModel):
    base64string: str = Field(
        min_length=1,
        description="The image in base64; also accepted wrapped as b'...' (what str(base64.b64encode(data)) gives).",
    )


class LegacyResponse(BaseModel):
    Ocr_Output: list[str] = Field(description="The text lines in reading order.")


# --- the PaddleX serving API (/ocr) ------------------------------------------------------------


class PaddleXOCRRequest(BaseModel):
    """PaddleX's OCR pipeline serving request (camelCase, as PaddleX clients send it)."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(min_length=1, description="base64 of an image or a PDF (URLs only if allow-listed; off)")
    fileType: int | None = Field(default=None, description="1: image, 0: PDF, omitted: detected from the content")
    useDocOrientationClassify: bool | None = None
    useDocUnwarping: bool | None = None
    useTextlineOrientation: bool | None = None
    textDetLimitSideLen: int | None = Field(default=None, ge=32, le=8192)
    textDetLimitType: str | None = Field(default=None, pattern="^(max|min)$")
    textDetThresh: float | None = Field(default=None, gt=0.0, lt=1.0)
    textDetBoxThresh: float | None = Field(default=None, gt=0.0, lt=1.0)
    textDetUnclipRatio: float | None = Field(default=None, ge=0.5, le=5.0)
    textRecScoreThresh: float | None = Field(default=None, ge=0.0, le=1.0)
    visualize: bool | None = None


class PaddleXPrunedResult(BaseModel):
    model_settings: dict
    text_det_params: dict
    text_type: str = "general"
    text_rec_score_thresh: float
    rec_texts: list[str]
    rec_scores: list[float]
    rec_polys: list[list[list[int]]]
    rec_boxes: list[list[int]]
    dt_polys: list[list[list[int]]]
    textline_orientation_angles: list[int]


class PaddleXOCRPage(BaseModel):
    prunedResult: PaddleXPrunedResult
    ocrImage: str | None = Field(default=None, description="JPEG (base64) with boxes and text drawn, if visualize")


class PaddleXResult(BaseModel):
    ocrResults: list[PaddleXOCRPage]
    dataInfo: dict


class PaddleXResponse(BaseModel):
    logId: str
    errorCode: int = 0
    errorMsg: str = "Success"
    result: PaddleXResult | None = None
