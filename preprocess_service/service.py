"""The one entry point of every route: sources in, OCR results out.

``OCRService.process`` owns everything between a route and the pipeline: admission (slots,
queue, rate limit, deadline), getting the bytes (base64, upload or an allow-listed URL),
decoding images and PDF pages within the limits, running the pipeline on each page, and the
optional visualisation. A route only maps its contract's request to ``Source``s and
``RequestOptions``, and the ``Processed`` result to its contract's envelope. The request's
options are resolved once, here (``options.resolve``): its memory cost, every page and the
envelope read the same ``Options``.

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

from . import documents, fetch, memory, metrics, visualize
from .admission import Admission
from .backends.base import InferenceBackend
from .budget import MIB, PageCost, workspace_bytes
from .errors import PayloadTooLarge
from .imaging import decode_base64
from .options import Options, RequestOptions
from .pdf_render import PdfWorkers
from .pipeline import Pipeline
from .results import DocumentResult, LineResult, ModelsUsed, PageResult, Processed
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


class OCRService:
    def __init__(self, settings: Settings, backend: InferenceBackend, pipeline: Pipeline, admission: Admission):
        self.settings = settings
        self.backend = backend
        self.pipeline = pipeline
        self.admission = admission
        self.pdf = PdfWorkers(settings.pdf_workers, settings.pdf_page_timeout_s)

    def close(self) -> None:
        """Stops the PDF renderer processes."""
        self.pdf.close()

    @classmethod
    async def create(cls, settings: Settings, backend: InferenceBackend,
                     admission: Admission | None = None) -> OCRService:
        pipeline = await Pipeline.create(settings, backend)
        await pipeline.warmup()
        admission = admission or Admission.from_settings(settings)
        admission.budget.capacity = workspace_bytes(settings, memory.rss_bytes())
        return cls(settings, backend, pipeline, admission)

    @property
    def model_names(self) -> dict[str, str | None]:
        return self.pipeline.model_names

    async def ready(self) -> bool:
        return await self.backend.ready()

    def input_shapes(self) -> dict[str, list[list[int]]] | None:
        """The fixed input shapes of each model (shape buckets), or None."""
        return self.pipeline.input_shapes()

    async def process(self, sources: list[Source], asked: RequestOptions, *, visualize: bool = False) -> Processed:
        """OCR of every image and PDF page of ``sources``, in order, once admitted.

        Within a slot: every source's pages are counted and sized from their headers (no pixel
        decoded yet), the largest page's memory cost is reserved from the pod's budget, then the
        pages are decoded or rendered and read one at a time, each freed before the next. A URL's
        content is charged to the budget too: the body limit while it is fetched, then its size,
        until the job ends."""
        limit = self.settings.max_images_per_request
        if len(sources) > limit:
            raise PayloadTooLarge(f"more than the {limit} images allowed per request")
        opts = self.pipeline.options(asked)  # once, for every page and the envelope

        async def job() -> Processed:
            budget = self.admission.budget
            fetched = 0  # bytes of URL content held for the job: charged to the budget like a body
            try:
                probed = []
                for src in sources:
                    t0 = time.perf_counter()
                    if src.encoding == "url":  # the most it may bring, until it is known
                        await budget.reserve(self.settings.max_body_bytes, self.settings.queue_timeout_s,
                                             "the URL's content")
                        fetched += self.settings.max_body_bytes
                    doc = await self._probe(src)
                    if src.encoding == "url":
                        budget.release(self.settings.max_body_bytes - len(doc.data))
                        fetched -= self.settings.max_body_bytes - len(doc.data)
                    probed.append((src, doc, t0))
                    if sum(len(d.sizes) for _, d, _ in probed) > limit:
                        raise PayloadTooLarge(f"more than the {limit} images (pages) allowed per request")
                cost = max(self.page_cost(size, opts, doc.bytes_per_pixel, visualize)
                           for _, doc, _ in probed for size in doc.sizes)
                await budget.reserve(cost, self.settings.queue_timeout_s, "the largest page")
                trim = bool(self.settings.malloc_trim_over_mib) and cost > self.settings.malloc_trim_over_mib * MIB
                try:
                    documents_read = []
                    for k, (src, doc, t0) in enumerate(probed):
                        if k and trim:
                            await asyncio.to_thread(memory.trim)
                        documents_read.append(await self._read_document(src, doc, t0, opts, visualize, trim))
                    return Processed(documents_read, opts)
                finally:
                    budget.release(cost)
                    if trim:
                        await asyncio.to_thread(memory.trim)
            finally:
                budget.release(fetched)

        return await self.admission.admit(job)

    def page_cost(self, size: tuple[int, int], opts: Options, bytes_per_pixel: int, visualize: bool) -> int:
        dh, dw = self.pipeline.det_shape(size, opts)
        return PageCost(size[0] * size[1], dh * dw, bytes_per_pixel, visualize).bytes

    async def _probe(self, src: Source) -> documents.Probed:
        s = self.settings
        if src.encoding == "url":
            data = await fetch.fetch(str(src.data), s.url_allowed_hosts, s.max_body_bytes,
                                     deadline_s=min(20.0, s.request_timeout_s), private_networks=s.url_private_networks)
        elif src.encoding == "base64":
            data = await asyncio.to_thread(decode_base64, str(src.data), src.field)
        else:
            data = src.data if isinstance(src.data, bytes) else await src.data()  # type: ignore[operator]
        return await asyncio.to_thread(documents.probe, data, src.kind, s.max_pdf_pages, s.max_image_pixels,
                                       pdf=self.pdf)

    async def _read_document(self, src: Source, doc: documents.Probed, t0: float, opts: Options,
                             visualize: bool, trim: bool) -> DocumentResult:
        pages = []
        try:
            for i in range(len(doc.sizes)):
                if i and trim:  # the previous large page's freed memory goes back before the next is decoded
                    await asyncio.to_thread(memory.trim)
                img = await asyncio.to_thread(documents.page_image, doc, i, self.settings.max_image_pixels,
                                              pdf=self.pdf)
                res = await self.read_page(img, opts, t0 if i == 0 else None)
                res.page, res.source = (i + 1 if doc.kind == "pdf" else None), src.name
                if visualize:
                    res.visualization = await self._visualization(res, img)
                pages.append(res)
                del img
        finally:
            if doc.kind == "pdf":  # its renderer lets the document go
                await asyncio.to_thread(self.pdf.forget, doc.key)
        return DocumentResult(doc.kind, pages)

    async def _visualization(self, res: PageResult, img: np.ndarray) -> str:
        jpeg = await asyncio.to_thread(visualize.draw, img, [ln.box for ln in res.lines], [ln.text for ln in res.lines],
                                       font=self.settings.visualize_font)
        return base64.b64encode(jpeg).decode()

    async def read_page(self, img: np.ndarray, opts: Options, t0: float | None = None) -> PageResult:
        """OCR of one decoded BGR image (t0: when decoding started, for the decode timing)."""
        t1 = time.perf_counter()
        t0 = t1 if t0 is None else t0
        result = await self.pipeline.read(img, opts)
        lines = [LineResult(ln.text, round(ln.confidence, 6), ln.box.round().astype(int).tolist())
                 for ln in result.lines]
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
        return PageResult(
            lines=lines,
            width=int(img.shape[1]),
            height=int(img.shape[0]),
            models=ModelsUsed(
                backend=self.backend.name,
                det=names["det"] or "",
                rec=names["rec"] or "",
                cls=names["cls"] if result.used_cls else None,
                execution_providers={v: providers.get(v, "unknown") for v in used.values() if v},
            ),
            timings_ms={k: round(v, 2) for k, v in timings.items()},
        )
