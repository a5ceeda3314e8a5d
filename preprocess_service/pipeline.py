"""The order of the stages: detection -> crop -> [orientation] -> recognition.

Each step is a plain function on numpy arrays; only ``backend.run`` crosses to the model
runtime. CPU-heavy pre/post-processing runs on worker threads so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np

from .backends.base import InferenceBackend, call_origin
from .errors import InvalidRequest
from .model_spec import ClsSpec, DetSpec, RecSpec, load_spec
from .options import Options, RequestOptions, resolve
from .settings import Settings
from .stages import classification, crop, detection, recognition
from .tensors import CTC_ARGMAX, CTC_MAX_PROB, PROB_U8, VALID_WIDTH

# The served models' own tensors (tensors.py): imported here by name, for the pipeline's readers.
__all__ = ["CTC_ARGMAX", "CTC_MAX_PROB", "PROB_U8", "VALID_WIDTH", "Pipeline", "PipelineResult", "TextLine"]


@dataclass
class TextLine:
    text: str
    confidence: float
    box: np.ndarray  # (4, 2) float32, source-image pixels


@dataclass
class PipelineResult:
    lines: list[TextLine]
    used_cls: bool
    timings_ms: dict[str, float] = field(default_factory=dict)


class Pipeline:
    def __init__(self, settings: Settings, backend: InferenceBackend, det: DetSpec, rec: RecSpec, cls: ClsSpec | None):
        self.settings = settings
        self.backend = backend
        self.det = det
        self.rec = rec
        self.cls = cls
        # shape buckets (settings.shape_buckets): the spatial shapes are chosen here (detection
        # canvases, recognition widths), the batch sizes by the backend's BucketedBackend
        self.canvases = settings.canvases if settings.buckets_on else ()
        self.rec_widths = tuple(settings.rec_width_buckets) if settings.buckets_on else ()
        self.rec_batch = min(settings.rec_batch_size, max(settings.rec_batch_sizes)) if settings.buckets_on \
            else settings.rec_batch_size

    @classmethod
    async def create(cls, settings: Settings, backend: InferenceBackend) -> Pipeline:
        names = settings.model_names
        det = load_spec(settings.model_repository, names["det"])
        rec = load_spec(settings.model_repository, names["rec"])
        if not isinstance(det, DetSpec) or not isinstance(rec, RecSpec):
            raise ValueError(f"{names['det']} must be a detection model and {names['rec']} a recognition model")
        await backend.load([det.name, rec.name])
        cls_spec = None
        cls_name = names.get("cls")
        if cls_name and (settings.model_repository / cls_name).exists():
            spec = load_spec(settings.model_repository, cls_name)
            if not isinstance(spec, ClsSpec):
                raise ValueError(f"{cls_name} is not a classification model")
            # the classifier is required only when it runs by default
            if await backend.load([cls_name], required=settings.orientation_default):
                cls_spec = spec
        if settings.orientation_default and cls_spec is None:
            raise ValueError("text-line orientation is on but no classifier model is available")
        return cls(settings, backend, det, rec, cls_spec)

    @property
    def model_names(self) -> dict[str, str | None]:
        return {"det": self.det.name, "rec": self.rec.name, "cls": self.cls.name if self.cls else None}

    def input_shapes(self) -> dict[str, list[list[int]]] | None:
        """Every input shape each model can be sent, batch first (None: shapes follow the pages).

        The image input only (a recognition or orientation batch also sends its rows' valid
        widths, (N, 1)). Known at start-up: the canvases and widths of the settings times the
        batch sizes of the backend's ``BucketedBackend``."""
        if not self.canvases:
            return None
        sizes = getattr(self.backend, "batch_sizes", lambda _m: ())
        rec_h = self.rec.image_height
        shapes: dict[str, list[list[int]]] = {}

        def layout(model: str, h: int, w: int) -> list[int]:
            return [h, w, 3] if self._has_uint8_head(model) else [3, h, w]

        shapes[self.det.name] = [[n, *layout(self.det.name, h, w)] for h, w in self.canvases
                                 for n in sizes(self.det.name) or (1,)]
        shapes[self.rec.name] = [[n, *layout(self.rec.name, rec_h, w)] for w in self.rec_widths
                                 for n in sizes(self.rec.name) or (self.rec_batch,)]
        if self.cls is not None:
            shapes[self.cls.name] = [[n, *layout(self.cls.name, self.cls.image_height, self.cls.image_width)]
                                     for n in sizes(self.cls.name) or (self.rec_batch,)]
        return shapes

    async def warmup_buckets(self) -> None:
        """One run of every input shape (zeros), so that no request pays a GPU's first run of a
        shape (a cuDNN plan, a TensorRT profile); before the pod is ready."""
        for model, shapes in (self.input_shapes() or {}).items():
            io = self.backend.io(model)
            for shape in shapes:
                dtype = np.uint8 if self._has_uint8_head(model) else np.float32
                inputs = {io.inputs[0]: np.zeros(shape, dtype=dtype)}
                if VALID_WIDTH in io.inputs:
                    inputs[VALID_WIDTH] = np.full((shape[0], 1), shape[2], dtype=np.int64)
                await self.backend.run(model, inputs, [io.outputs[-1]])

    async def warmup(self) -> None:
        """One small run through every model, and a check that the dictionary fits the model."""
        img = np.full((64, 256, 3), 255, dtype=np.uint8)
        img[24:40, 32:224] = 0
        await self.read(img, RequestOptions(use_textline_orientation=self.cls is not None, rec_score_thresh=0.0))
        probe = recognition.plan_batches([np.full((self.rec.image_height, self.rec.base_width, 3), 255, np.uint8)],
                                         self.rec, 1, uint8=self._has_uint8_head(self.rec.name),
                                         width_buckets=self.rec_widths)[0]
        io = self.backend.io(self.rec.name)
        out = (await self.backend.run(self.rec.name, self._inputs(io, probe.tensor, probe.widths),
                                      [io.outputs[0]]))[io.outputs[0]]  # the full softmax, once
        recognition.ctc_decode(out, self.rec.charset)  # raises on a dictionary/model mismatch
        if self.settings.warmup_every_bucket:
            await self.warmup_buckets()

    def _has_uint8_head(self, model: str) -> bool:
        """The model has the uint8 input head (and, for detection, the uint8 map)."""
        io = self.backend.io(model)
        return PROB_U8 in io.outputs or VALID_WIDTH in io.inputs

    @staticmethod
    def _inputs(io, tensor: np.ndarray, widths: np.ndarray | None = None) -> dict[str, np.ndarray]:
        inputs = {io.inputs[0]: tensor}
        if widths is not None:
            inputs[VALID_WIDTH] = widths
        return inputs

    async def _detect(self, tensor: np.ndarray) -> np.ndarray:
        """The (H, W) float32 probability map (from the uint8 map where the model has one)."""
        io = self.backend.io(self.det.name)
        if PROB_U8 in io.outputs:
            res = await self.backend.run(self.det.name, {io.inputs[0]: tensor}, [PROB_U8])
            return res[PROB_U8][0, 0].astype(np.float32) * np.float32(1 / 255)
        res = await self.backend.run(self.det.name, {io.inputs[0]: tensor}, [io.outputs[0]])
        return res[io.outputs[0]][0, 0]

    async def _classify(self, tensor: np.ndarray, widths: np.ndarray | None) -> np.ndarray:
        assert self.cls is not None
        io = self.backend.io(self.cls.name)
        res = await self.backend.run(self.cls.name, self._inputs(io, tensor, widths), [io.outputs[0]])
        return res[io.outputs[0]]

    async def _recognize(self, batch: recognition.RecBatch) -> list[tuple[str, float]]:
        io = self.backend.io(self.rec.name)
        inputs = self._inputs(io, batch.tensor, batch.widths)
        if CTC_ARGMAX in io.outputs and CTC_MAX_PROB in io.outputs:
            # the model's greedy-CTC head: N x T indices and probabilities instead of N x T x C
            res = await self.backend.run(self.rec.name, inputs, [CTC_ARGMAX, CTC_MAX_PROB])
            return recognition.ctc_greedy(res[CTC_ARGMAX], res[CTC_MAX_PROB], self.rec.charset)
        probs = (await self.backend.run(self.rec.name, inputs, [io.outputs[0]]))[io.outputs[0]]
        return recognition.ctc_decode(probs, self.rec.charset)

    def options(self, asked: RequestOptions) -> Options:
        """What a request asking ``asked`` runs with (``options.resolve``, with this detection model)."""
        return resolve(asked, self.settings, self.det)

    @staticmethod
    def stage_params(opts: Options) -> tuple[detection.ResizePolicy, detection.DBParams]:
        """The detection stage's resize policy and DB parameters for ``opts``."""
        policy = detection.ResizePolicy(opts.det_limit_side_len, opts.det_min_side_len, opts.det_max_side_limit)
        params = detection.DBParams(opts.det_thresh, opts.det_box_thresh, opts.det_unclip_ratio, opts.det_max_candidates)
        return policy, params

    def det_shape(self, size: tuple[int, int], opts: Options) -> tuple[int, int]:
        """(height, width) of the detection input for a page of ``size`` (width, height): what the
        page's memory cost is sized by."""
        w, h = size
        return detection.resized_shape(h, w, self.stage_params(opts)[0])

    async def read(self, img: np.ndarray, opts: Options | RequestOptions) -> PipelineResult:
        """The text lines of one BGR image: detection -> crop -> [orientation] -> recognition.
        ``opts``: as resolved by the service once for the request (a ``RequestOptions`` is
        resolved here, for callers that drive the pipeline directly)."""
        if isinstance(opts, RequestOptions):
            opts = self.options(opts)
        call_origin.set(object())  # this page's model calls (a batcher merges only other pages' with them)
        timings: dict[str, float] = {}
        use_cls = opts.use_textline_orientation
        if use_cls and self.cls is None:
            raise InvalidRequest("use_textline_orientation needs a classifier model, and none is loaded")
        policy, params = self.stage_params(opts)
        score_thresh = opts.rec_score_thresh

        # detection
        t0 = time.perf_counter()
        det_in = await asyncio.to_thread(detection.preprocess, img, self.det, policy, self._has_uint8_head(self.det.name),
                                        self.canvases)
        prob = await self._detect(det_in.tensor)
        boxes = await asyncio.to_thread(self._boxes, prob, det_in, params)
        t1 = time.perf_counter()
        timings["detection"] = (t1 - t0) * 1000
        if not boxes:
            timings["crop"] = timings["recognition"] = 0.0
            return PipelineResult(lines=[], used_cls=use_cls, timings_ms=timings)

        crops = await asyncio.to_thread(crop.crop_all, img, boxes)
        t2 = time.perf_counter()
        timings["crop"] = (t2 - t1) * 1000

        if use_cls:
            await self._orient(crops, opts.cls_thresh)
            t3 = time.perf_counter()
            timings["classification"] = (t3 - t2) * 1000
            t2 = t3

        texts = await self._read_crops(crops)
        timings["recognition"] = (time.perf_counter() - t2) * 1000

        lines = []
        for box, (text, conf) in zip(boxes, texts):
            if text and conf >= score_thresh:
                lines.append(TextLine(text=text, confidence=conf, box=box))
        return PipelineResult(lines=lines, used_cls=use_cls, timings_ms=timings)

    async def _orient(self, crops: list[np.ndarray], thresh: float) -> None:
        """Turn the crops the classifier finds upside down (at least ``thresh`` sure), in place."""
        assert self.cls is not None
        for start in range(0, len(crops), self.rec_batch):
            part = crops[start:start + self.rec_batch]
            if self._has_uint8_head(self.cls.name):
                tensor, widths = await asyncio.to_thread(classification.preprocess_u8, part, self.cls)
            else:
                tensor, widths = await asyncio.to_thread(classification.preprocess, part, self.cls), None
            probs = await self._classify(tensor, widths)
            classification.apply(part, probs, self.cls, thresh)
            crops[start:start + self.rec_batch] = part

    async def _read_crops(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        """(text, confidence) of every crop, in order: batched by width, the batches at once."""
        s = self.settings
        batches = await asyncio.to_thread(
            recognition.plan_batches, crops, self.rec, self.rec_batch, s.rec_width_multiple, s.rec_min_width,
            self._has_uint8_head(self.rec.name), self.rec_widths,
        )
        decoded = await asyncio.gather(*(self._recognize(b) for b in batches))
        texts: list[tuple[str, float] | None] = [None] * len(crops)
        for b, results in zip(batches, decoded):
            for i, res in zip(b.indices, results):
                texts[i] = res
        assert all(t is not None for t in texts)
        return texts  # type: ignore[return-value]

    @staticmethod
    def _boxes(prob: np.ndarray, det_in: detection.DetInput, params: detection.DBParams) -> list[np.ndarray]:
        boxes, _ = detection.boxes_from_prob(prob, det_in, params)
        return [boxes[i] for i in detection.reading_order(boxes)]
