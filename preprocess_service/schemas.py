"""Request and response schemas of the HTTP API, all in one place."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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


class OCRRequest(OCROptions):
    image: str = Field(
        min_length=1,
        description="The image, base64-encoded (standard or URL-safe alphabet), or a data: URL.",
        examples=["iVBORw0KGgoAAAANSUhEUgAA..."],
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


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    backend: str
    models: dict[str, str | None]
    detail: str | None = None
