"""Embedded backend on Intel's OpenVINO runtime: the repository's same ONNX files, read by
``openvino.Core().read_model`` and compiled for a device (the CPU by default).

Shapes stay dynamic (detection inputs change with every page, recognition widths with every
batch); OpenVINO's CPU plugin infers each new shape itself, no re-compilation. Each compiled
model has as many ``InferRequest`` objects as it has streams (the plugin's
``OPTIMAL_NUMBER_OF_INFER_REQUESTS``), each owned by one thread of the model's own thread pool
(``infer`` releases the GIL); calls wait in that pool's queue, off the event loop, so a stream
is never shared and a cancelled caller never leaves a request half-used. The request's deadline
(``base.request_deadline``) is checked before queueing and again when a thread takes the call.

The compile options (``OCR_OV_*``), chosen like the onnxruntime backend's and measured with
``bench/openvino_compare.py`` (docs/artifacts/openvino.json): detection with the LATENCY hint (one
run per page over every thread), recognition and orientation with THROUGHPUT (several small runs
side by side); threads = the usable cores, which respect a cgroup CPU limit (OpenVINO by itself
counts the node's cores); f32, because OpenVINO otherwise picks bf16 on CPUs that have it
(AVX512-BF16, AMX), which reads some lines differently from onnxruntime; the CPU plugin's cache of
kernels per input shape off, because OCR shapes change with every page and crop and the cache
kept growing the resident set; threads not pinned, because pods under a CPU limit share the node's
cores and would all pin to the same ones.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import openvino as ov

from ..model_spec import model_file
from .base import InferenceBackend, ModelIO, check_deadline, request_deadline

log = logging.getLogger(__name__)

PerformanceHint = Literal["LATENCY", "THROUGHPUT"]
InferencePrecision = Literal["f32", "bf16", "f16", "auto"]


@dataclass(frozen=True)
class OpenVinoOptions:
    """How each model is compiled (the ``OCR_OV_*`` settings; the defaults are theirs)."""

    device: str = "CPU"
    # LATENCY: one stream, every thread on one run; THROUGHPUT: `num_streams` runs at once, the
    # threads shared among them. `model_hints` overrides the hint for some models (detection).
    performance_hint: PerformanceHint = "LATENCY"
    model_hints: dict[str, PerformanceHint] = field(default_factory=dict)
    num_streams: int = 0  # streams of a THROUGHPUT model (0: the plugin's choice); LATENCY: always 1
    inference_threads: int = 0  # 0: the plugin's own count (the service passes the usable cores)
    inference_precision: InferencePrecision = "f32"  # "auto": the plugin's choice (bf16 where the CPU has it)
    runtime_cache_capacity: int = 0  # kernels kept per input shape (0: none; OpenVINO's own default is 5000)
    cpu_pinning: bool = False
    cache_dir: str = ""  # compiled-model cache (empty: none)
    extra: dict[str, str] = field(default_factory=dict)  # any further plugin property, verbatim

    def __post_init__(self) -> None:
        if min(self.num_streams, self.inference_threads, self.runtime_cache_capacity) < 0:
            raise ValueError("num_streams, inference_threads and runtime_cache_capacity must be >= 0")

    @classmethod
    def from_settings(cls, settings) -> OpenVinoOptions:
        return cls(
            device=settings.ov_device,
            performance_hint=settings.ov_performance_hint,
            model_hints={settings.model_names["det"]: settings.ov_det_performance_hint},
            num_streams=settings.ov_num_streams,
            inference_threads=settings.ov_inference_threads or settings.worker_cores,
            inference_precision=settings.ov_inference_precision,
            runtime_cache_capacity=settings.ov_runtime_cache_capacity,
            cpu_pinning=settings.ov_cpu_pinning,
            cache_dir=str(settings.ov_cache_dir or ""),
        )

    def hint(self, model: str) -> PerformanceHint:
        return self.model_hints.get(model, self.performance_hint)

    def properties(self, model: str = "") -> dict[str, Any]:
        """The ``compile_model`` configuration of a model, in OpenVINO's property names."""
        hint = self.hint(model)
        props: dict[str, Any] = {"PERFORMANCE_HINT": hint}
        if self.num_streams and hint == "THROUGHPUT":
            props["NUM_STREAMS"] = self.num_streams
        if self.device == "CPU":
            if self.inference_threads:
                props["INFERENCE_NUM_THREADS"] = self.inference_threads
            props["CPU_RUNTIME_CACHE_CAPACITY"] = self.runtime_cache_capacity
            props["ENABLE_CPU_PINNING"] = self.cpu_pinning
        if self.inference_precision != "auto":
            props["INFERENCE_PRECISION_HINT"] = self.inference_precision
        if self.cache_dir:
            props["CACHE_DIR"] = self.cache_dir
        props.update(self.extra)
        return props


class _Model:
    """One compiled model and its runs: a thread per infer request, each thread with its own."""

    def __init__(self, name: str, compiled: ov.CompiledModel):
        self.compiled = compiled
        self.requests = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self.executor = ThreadPoolExecutor(max_workers=self.requests, thread_name_prefix=f"ov-{name}")
        self._local = threading.local()
        self.io = ModelIO(
            inputs=tuple(p.get_any_name() for p in compiled.inputs),
            outputs=tuple(p.get_any_name() for p in compiled.outputs),
        )
        devices = compiled.get_property("EXECUTION_DEVICES")
        self.device = "+".join(str(d) for d in devices) if devices else "?"

    def request(self) -> ov.InferRequest:
        """This thread's infer request (created on its first run)."""
        req = getattr(self._local, "request", None)
        if req is None:
            req = self._local.request = self.compiled.create_infer_request()
        return req


class OpenVinoBackend(InferenceBackend):
    name = "openvino"

    def __init__(self, repository: Path, options: OpenVinoOptions | None = None):
        self._repository = Path(repository)
        self._options = options or OpenVinoOptions()
        self._core = ov.Core()
        self._models: dict[str, _Model] = {}

    @property
    def options(self) -> OpenVinoOptions:
        return self._options

    def _compile(self, model: str) -> ov.CompiledModel:
        path = model_file(self._repository / model)
        compiled = self._core.compile_model(self._core.read_model(str(path)), self._options.device,
                                            self._options.properties(model))
        log.info("openvino: %s on %s, %s streams x %s threads, %s", model, compiled.get_property("EXECUTION_DEVICES"),
                 compiled.get_property("NUM_STREAMS"), compiled.get_property("INFERENCE_NUM_THREADS"),
                 compiled.get_property("INFERENCE_PRECISION_HINT"))
        return compiled

    async def load(self, models: list[str], required: bool = True) -> list[str]:
        loop = asyncio.get_running_loop()
        loaded = []
        for model in models:
            if model not in self._models:
                if not required and not (self._repository / model).is_dir():
                    continue
                compiled = await loop.run_in_executor(None, self._compile, model)
                self._models[model] = _Model(model, compiled)
            loaded.append(model)
        return loaded

    def io(self, model: str) -> ModelIO:
        return self._models[model].io

    async def run(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        m = self._models[model]
        wanted = list(outputs or m.io.outputs)
        deadline = request_deadline.get()
        check_deadline(deadline, model)

        def job() -> dict[str, np.ndarray]:
            check_deadline(deadline, model)  # waited for a free stream past the deadline: do not run
            res = m.request().infer(inputs, share_inputs=True, share_outputs=True)
            return {name: np.array(res[name]) for name in wanted}  # copies: the request's buffers are reused

        return await asyncio.get_running_loop().run_in_executor(m.executor, job)

    async def ready(self) -> bool:
        return bool(self._models)

    def describe(self) -> dict[str, str]:
        return {name: f"openvino:{m.device}" for name, m in self._models.items()}

    async def close(self) -> None:
        for m in self._models.values():
            m.executor.shutdown(wait=False, cancel_futures=True)
        self._models.clear()
