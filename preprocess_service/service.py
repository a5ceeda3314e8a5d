"""The one entry point of every route: sources in, OCR results out.

``OCRService.process`` owns everything between a route and the pipeline: admission (slots,
queue, rate limit, deadline), getting the bytes (base64, upload or an allow-listed URL),
decoding images and PDF pages within the limits, running the pipeline on each page, and the
optional visualisation. A route only maps its contract's request to ``Source``s and
``PipelineOptions``, and the ``Processed`` result to its contract's envelope.

Verbs: ``Admission.admit`` (may this job start), ``OCRService.process`` (one request),
``Pipeline.read`` (one page through the stages), ``InferenceBackend.run`` (one model call).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from . import fetch, metrics, visualize
from .admission import Admission
from .backends.base import InferenceBackend
from .documents import load_pages
from .errors import PayloadTooLarge
from .imaging import decode_base64, decode_image
from .pipeline import EffectiveSettings, Pipeline, PipelineOptions
from .schemas import Line, ModelInfo, OCRResponse
from .settings import Settings


@dataclass(frozen=True)
class Source:
    """One input document as the client sent it."""

    # base64 text or a data: URL ("base64"); bytes, or an async reader of them such as an upload's
    # read ("raw"); an http(s) URL ("url")
    data: str | bytes | Callable[[], Awaitable[bytes]]
    encoding: Literal["base64", "raw", "url"] = "base64"
    kind: Literal["image", "pdf", "auto"] = "image"  # "auto": a PDF or an image, by content
    field: str = "image"  # the request field it came in, for error messages
    name: str | None = None  # an uploaded file's name, echoed in the result


@dataclass
class Document:
    kind: Literal["image", "pdf"]
    pages: list[OCRResponse]


@dataclass
class Processed:
    documents: list[Document]
    settings: EffectiveSettings  # what the request really ran with

    @property
    def pages(self) -> list[OCRResponse]:
        return [page for doc in self.documents for page in doc.pages]


class OCRService:
    def __init__(self, settings: Settings, backend: InferenceBackend, pipeline: Pipeline, admission: Admission):
        self.settings = settings
        self.backend = backend
        self.pipeline = pipeline
        self.admission = admission

    @classmethod
    async def create(cls, settings: Settings, backend: InferenceBackend,
                     admission: Admission | None = None) -> OCRService:
        pipeline = await Pipeline.create(settings, backend)
        await pipeline.warmup()
        return cls(settings, backend, pipeline, admission or Admission.from_settings(settings))

    @property
    def model_names(self) -> dict[str, str | None]:
        return self.pipeline.model_names

    async def ready(self) -> bool:
        return await self.backend.ready()

    async def process(self, sources: list[Source], opts: PipelineOptions, *, visualize: bool = False,
                      identity: str | None = None) -> Processed:
        """OCR of every image and PDF page of ``sources``, in order, once admitted."""
        limit = self.settings.max_images_per_request
        if len(sources) > limit:
            raise PayloadTooLarge(f"more than the {limit} images allowed per request")
        settings = self.pipeline.effective_settings(opts)

        async def job() -> Processed:
            loaded = []
            total = 0
            for src in sources:
                t0 = time.perf_counter()
                kind, images = await self._load(src)
                total += len(images)
                if total > limit:
                    raise PayloadTooLarge(f"more than the {limit} images (pages) allowed per request")
                loaded.append((src, kind, images, t0))
            documents = []
            for src, kind, images, t0 in loaded:
                pages = []
                for i, img in enumerate(images):
                    res = await self.read_page(img, opts, t0 if i == 0 else None)
                    res.page, res.source = (i + 1 if kind == "pdf" else None), src.name
                    if visualize:
                        res.visualization = await self._visualization(res, img)
                    pages.append(res)
                documents.append(Document(kind, pages))
            return Processed(documents, settings)

        return await self.admission.admit(job, identity)

    async def _load(self, src: Source) -> tuple[Literal["image", "pdf"], list[np.ndarray]]:
        s = self.settings
        if src.encoding == "url":
            data = await fetch.fetch(str(src.data), s.url_allowed_hosts, s.max_body_bytes)
        elif src.encoding == "base64":
            data = await asyncio.to_thread(decode_base64, str(src.data), src.field)
        else:
            data = src.data if isinstance(src.data, bytes) else await src.data()  # type: ignore[operator]
        if src.kind == "image":
            return "image", [await asyncio.to_thread(decode_image, data, s.max_image_pixels)]
        kind, pages = await asyncio.to_thread(load_pages, data, src.kind, s.max_pdf_pages, s.max_image_pixels)
        return ("pdf" if kind == "pdf" else "image"), pages

    @staticmethod
    async def _visualization(res: OCRResponse, img: np.ndarray) -> str:
        jpeg = await asyncio.to_thread(visualize.draw, img, [ln.box for ln in res.lines], [ln.text for ln in res.lines])
        return base64.b64encode(jpeg).decode()

    async def read_page(self, img: np.ndarray, opts: PipelineOptions, t0: float | None = None) -> OCRResponse:
        """OCR of one decoded BGR image (t0: when decoding started, for the decode timing)."""
        t1 = time.perf_counter()
        t0 = t1 if t0 is None else t0
        result = await self.pipeline.read(img, opts)
        lines = [
            Line(text=ln.text, confidence=round(ln.confidence, 6), box=ln.box.round().astype(int).tolist())
            for ln in result.lines
        ]
        timings = {"decode": (t1 - t0) * 1000, **result.timings_ms}
        timings["total"] = (time.perf_counter() - t0) * 1000
        backend = self.backend.name
        for stage, ms in timings.items():
            metrics.STAGE_DURATION.labels(stage, backend).observe(ms / 1000)
        metrics.IMAGES.labels(backend).inc()
        metrics.LINES.labels(backend).inc(len(lines))
        names = self.pipeline.model_names
        providers = self.backend.describe()
        used = {k: v for k, v in names.items() if v and (k != "cls" or result.used_cls)}
        return OCRResponse(
            lines=lines,
            text="\n".join(ln.text for ln in lines),
            width=int(img.shape[1]),
            height=int(img.shape[0]),
            model=ModelInfo(
                backend=self.backend.name,
                det=names["det"] or "",
                rec=names["rec"] or "",
                cls=names["cls"] if result.used_cls else None,
                execution_providers={v: providers.get(v, "unknown") for v in used.values() if v},
            ),
            timings_ms={k: round(v, 2) for k, v in timings.items()},
        )
