"""One OCR request from decoded JSON to response schema: decode -> pipeline -> assemble."""

from __future__ import annotations

import asyncio
import base64
import time

from . import metrics, visualize
from .documents import load_pages
from .errors import PayloadTooLarge
from .backends.base import InferenceBackend
from .imaging import decode_base64, decode_image
from .pipeline import Pipeline, PipelineOptions
from .schemas import Line, ModelInfo, OCRRequest, OCRResponse
from .settings import Settings


class OCRService:
    def __init__(self, settings: Settings, backend: InferenceBackend, pipeline: Pipeline):
        self.settings = settings
        self.backend = backend
        self.pipeline = pipeline

    @classmethod
    async def create(cls, settings: Settings, backend: InferenceBackend) -> "OCRService":
        pipeline = await Pipeline.create(settings, backend)
        await pipeline.warmup()
        return cls(settings, backend, pipeline)

    async def ocr(self, req: OCRRequest) -> OCRResponse:
        t0 = time.perf_counter()
        data = await asyncio.to_thread(decode_base64, req.image)
        img = await asyncio.to_thread(decode_image, data, self.settings.max_image_pixels)
        res = await self.ocr_image(img, self.options(req), t0)
        return await self._visualized(res, img) if req.visualize else res

    @staticmethod
    def options(req) -> PipelineOptions:
        return PipelineOptions(**req.model_dump(include=set(PipelineOptions.__dataclass_fields__)))

    async def _visualized(self, res: OCRResponse, img) -> OCRResponse:
        jpeg = await asyncio.to_thread(visualize.draw, img, [ln.box for ln in res.lines], [ln.text for ln in res.lines])
        res.visualization = base64.b64encode(jpeg).decode()
        return res

    async def ocr_documents(self, documents: list[tuple[str | None, bytes]], req) -> list[OCRResponse]:
        """Several files (images or PDFs): one result per image or PDF page, in order, within the
        images-per-request limit."""
        s = self.settings
        opts = self.options(req)
        pages: list[tuple[str | None, int | None, object]] = []
        for name, data in documents:
            kind, imgs = await asyncio.to_thread(load_pages, data, "auto", s.max_pdf_pages, s.max_image_pixels)
            pages += [(name, i + 1 if kind == "pdf" else None, img) for i, img in enumerate(imgs)]
            if len(pages) > s.max_images_per_request:
                raise PayloadTooLarge(f"more than the {s.max_images_per_request} images (pages) allowed per request")
        results = []
        for name, page, img in pages:
            res = await self.ocr_image(img, opts)
            res.page, res.source = page, name
            results.append(await self._visualized(res, img) if req.visualize else res)
        return results

    async def ocr_image(self, img, opts: PipelineOptions, t0: float | None = None) -> OCRResponse:
        """OCR of one decoded BGR image (t0: when decoding started, for the decode timing)."""
        t1 = time.perf_counter()
        t0 = t1 if t0 is None else t0
        result = await self.pipeline.run(img, opts)
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
