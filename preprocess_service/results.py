"""What the service returns: plain data, no HTTP schema.

``OCRService.process`` answers a ``Processed``: one ``DocumentResult`` per source (an image, or a
PDF's pages), each page a ``PageResult``. Each API contract builds its own envelope from these
(``schemas.OCRResponse.of`` for the native one and the CLI, the PaddleX and original routes in
their modules), so a new envelope is one route module and nothing here changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .options import Options


@dataclass(frozen=True)
class LineResult:
    text: str
    confidence: float  # mean of the per-character maximum probabilities, 0..1
    box: list[list[int]]  # four corner points [x, y], clockwise from top-left


@dataclass(frozen=True)
class ModelsUsed:
    backend: str
    det: str
    rec: str
    cls: str | None  # the orientation classifier, when it ran for this page
    execution_providers: dict[str, str]  # model -> the execution provider it really ran on


@dataclass
class PageResult:
    lines: list[LineResult]
    width: int
    height: int
    models: ModelsUsed
    timings_ms: dict[str, float]
    page: int | None = None  # 1-based, for a PDF's pages
    source: str | None = None  # an uploaded file's name
    visualization: str | None = None  # base64 JPEG with boxes and text, when asked

    @property
    def text(self) -> str:
        return "\n".join(ln.text for ln in self.lines)


@dataclass
class DocumentResult:
    kind: Literal["image", "pdf"]
    pages: list[PageResult] = field(default_factory=list)


@dataclass
class Processed:
    documents: list[DocumentResult]
    options: Options  # what the request really ran with

    @property
    def pages(self) -> list[PageResult]:
        return [page for doc in self.documents for page in doc.pages]
