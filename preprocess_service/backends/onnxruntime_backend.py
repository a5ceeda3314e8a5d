"""Embedded backend: the repository's ONNX models run in-process by onnxruntime (CPU or GPU)."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort

from ..model_spec import model_file
from .base import InferenceBackend, ModelIO, check_deadline, request_deadline

log = logging.getLogger(__name__)

GRAPH_OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
EXECUTION_MODE = {"sequential": ort.ExecutionMode.ORT_SEQUENTIAL, "parallel": ort.ExecutionMode.ORT_PARALLEL}

CUDA_PROVIDER = "CUDAExecutionProvider"
CudnnConvAlgoSearch = Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"]
ArenaExtendStrategy = Literal["kNextPowerOfTwo", "kSameAsRequested"]


@dataclass(frozen=True)
class CudaOptions:
    """onnxruntime's CUDA execution provider options (the ``OCR_ORT_CUDA_*`` settings).

    The same object writes the Triton configs (export_scripts/triton_config.py), so the embedded
    backend and Triton's onnxruntime backend make the same choices on a GPU. The defaults are
    the settings' defaults (a unit test holds them equal)."""

    # HEURISTIC: OCR inputs change shape with every page, and onnxruntime's default EXHAUSTIVE
    # search benchmarks every convolution again for each new shape (PaddleX measured 634 ms
    # against 1.9 ms per new input shape).
    cudnn_conv_algo_search: CudnnConvAlgoSearch = "HEURISTIC"
    # kSameAsRequested: the arena grows by what a run needs, not to the next power of two (on
    # varying shapes the power-of-two arena can double GPU memory for nothing).
    arena_extend_strategy: ArenaExtendStrategy = "kSameAsRequested"
    gpu_mem_limit_mib: int = 0  # 0: no limit (onnxruntime's SIZE_MAX)
    # copies on the compute stream (onnxruntime's default; separate streams can race)
    do_copy_in_default_stream: bool = True

    def __post_init__(self) -> None:
        if self.gpu_mem_limit_mib < 0:
            raise ValueError("gpu_mem_limit_mib must be >= 0")

    @classmethod
    def from_settings(cls, settings) -> CudaOptions:
        return cls(
            cudnn_conv_algo_search=settings.ort_cuda_cudnn_conv_algo_search,
            arena_extend_strategy=settings.ort_cuda_arena_extend_strategy,
            gpu_mem_limit_mib=settings.ort_cuda_gpu_mem_limit_mib,
            do_copy_in_default_stream=settings.ort_cuda_do_copy_in_default_stream,
        )

    def provider_options(self) -> dict[str, str]:
        """onnxruntime's option names and values (``providers=[("CUDAExecutionProvider", this)]``;
        Triton passes its ``cuda`` accelerator parameters to the same onnxruntime call)."""
        opts = {
            "cudnn_conv_algo_search": self.cudnn_conv_algo_search,
            "arena_extend_strategy": self.arena_extend_strategy,
            "do_copy_in_default_stream": "1" if self.do_copy_in_default_stream else "0",
        }
        if self.gpu_mem_limit_mib:
            opts["gpu_mem_limit"] = str(self.gpu_mem_limit_mib * 2**20)
        return opts

    def triton_legacy_parameters(self) -> dict[str, str]:
        """The same choices as Triton onnxruntime backend's model-level ``parameters`` (numeric codes)."""
        legacy = {
            "cudnn_conv_algo_search": str(("EXHAUSTIVE", "HEURISTIC", "DEFAULT").index(self.cudnn_conv_algo_search)),
            "arena_extend_strategy": str(("kNextPowerOfTwo", "kSameAsRequested").index(self.arena_extend_strategy)),
            "do_copy_in_default_stream": "1" if self.do_copy_in_default_stream else "0",
        }
        if self.gpu_mem_limit_mib:
            legacy["gpu_mem_limit"] = str(self.gpu_mem_limit_mib * 2**20)
        return legacy


class OnnxRuntimeBackend(InferenceBackend):
    name = "onnxruntime"

    def __init__(self, repository: Path, providers: list[str], intra_op_threads: int, workers: int = 1,
                 graph_optimization: str = "all", cpu_mem_arena: bool = False, execution_mode: str = "sequential",
                 inter_op_threads: int = 1, allow_cpu_fallback: bool = False,
                 model_intra_op_threads: dict[str, int] | None = None, cuda_options: CudaOptions | None = None,
                 busy_intra_op_threads: dict[str, int] | None = None):
        self._repository = Path(repository)
        self._providers = providers
        self._intra = intra_op_threads
        self._inter = inter_op_threads
        self._graph_optimization = GRAPH_OPTIMIZATION[graph_optimization]
        self._arena = cpu_mem_arena
        self._execution_mode = EXECUTION_MODE[execution_mode]
        self._allow_fallback = allow_cpu_fallback
        self._model_intra = dict(model_intra_op_threads or {})
        self._busy_intra = dict(busy_intra_op_threads or {})
        self._cuda = cuda_options or CudaOptions()
        self._sessions: dict[str, ort.InferenceSession] = {}
        # A model with its own thread count (detection: all cores, one big run per image) gets a
        # second CPU session on the busy count, used by runs that start while others are in
        # progress: then the cores are shared rather than oversubscribed. _in_progress counts the
        # runs submitted and not yet finished on their thread (changed on the event loop only;
        # a run whose caller was cancelled counts until its thread is done with it). The choice is
        # made when a run is submitted: one queued behind others will start among them.
        self._busy_sessions: dict[str, ort.InferenceSession] = {}
        self._in_progress = 0
        self._io: dict[str, ModelIO] = {}
        # Model runs happen on these threads, off the event loop; workers x intra-op threads is
        # the core count, so the cores stay busy without being oversubscribed.
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ort")

    def _threads(self, model: str) -> int:
        return self._model_intra.get(model, self._intra)

    def _options(self, model: str, threads: int | None = None) -> ort.SessionOptions:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or self._threads(model)
        opts.inter_op_num_threads = self._inter
        opts.execution_mode = self._execution_mode
        opts.graph_optimization_level = self._graph_optimization
        opts.enable_cpu_mem_arena = self._arena
        opts.log_severity_level = 3
        return opts

    def session_providers(self, available: set[str] | None = None) -> list[str | tuple[str, dict[str, str]]]:
        """What ``InferenceSession(providers=...)`` gets: the asked providers this onnxruntime
        build has, in order, CUDA with its options (``OCR_ORT_CUDA_*``); the CPU when none is."""
        available = set(ort.get_available_providers()) if available is None else available
        chosen: list[str | tuple[str, dict[str, str]]] = []
        for p in self._providers:
            if p not in available:
                continue
            chosen.append((p, self._cuda.provider_options()) if p == CUDA_PROVIDER else p)
        return chosen or ["CPUExecutionProvider"]

    def _open(self, model: str) -> None:
        path = model_file(self._repository / model)
        available = set(ort.get_available_providers())
        providers = self.session_providers(available)
        sess = ort.InferenceSession(str(path), self._options(model), providers=providers)
        got = sess.get_providers()[0]
        if got != self._providers[0]:
            if self._providers[0] != "CPUExecutionProvider" and not self._allow_fallback:
                raise RuntimeError(
                    f"model {model}: asked for {self._providers[0]} but onnxruntime gave {got} "
                    f"(available here: {sorted(available)}); refusing to serve on a silent fallback. "
                    "Fix the GPU set-up, or set OCR_ORT_ALLOW_CPU_FALLBACK=true to accept it"
                )
            log.warning(
                "model %s asked for %s but runs on %s (the service reports what it really uses)",
                model, self._providers[0], got,
            )
        self._sessions[model] = sess
        busy = self._busy_intra.get(model)
        if got == "CPUExecutionProvider" and busy and busy != self._threads(model):
            self._busy_sessions[model] = ort.InferenceSession(str(path), self._options(model, busy), providers=providers)
        self._io[model] = ModelIO(
            inputs=tuple(i.name for i in sess.get_inputs()),
            outputs=tuple(o.name for o in sess.get_outputs()),
        )

    async def load(self, models: list[str], required: bool = True) -> list[str]:
        loop = asyncio.get_running_loop()
        loaded = []
        for model in models:
            if model not in self._sessions:
                if not required and not (self._repository / model).is_dir():
                    continue
                await loop.run_in_executor(self._executor, self._open, model)
            loaded.append(model)
        return loaded

    def io(self, model: str) -> ModelIO:
        return self._io[model]

    def _session(self, model: str) -> ort.InferenceSession:
        """The session of a run that starts now: the busy-count one while other runs are in progress."""
        if self._in_progress and model in self._busy_sessions:
            return self._busy_sessions[model]
        return self._sessions[model]

    async def run(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        sess = self._session(model)
        outputs = list(outputs or self._io[model].outputs)
        deadline = request_deadline.get()
        check_deadline(deadline, model)
        loop = asyncio.get_running_loop()

        def job() -> list:
            check_deadline(deadline, model)  # waited for a thread past the deadline: do not run
            return sess.run(outputs, inputs)

        future = self._executor.submit(job)
        self._in_progress += 1
        future.add_done_callback(lambda _: self._call_on(loop, self._run_done))
        result = await asyncio.wrap_future(future)
        return dict(zip(outputs, result))

    def _run_done(self) -> None:
        self._in_progress -= 1

    @staticmethod
    def _call_on(loop: asyncio.AbstractEventLoop, fn) -> None:
        try:
            loop.call_soon_threadsafe(fn)
        except RuntimeError:  # the loop is closed (shutdown): nothing is counted any more
            pass

    async def ready(self) -> bool:
        return bool(self._sessions)

    def describe(self) -> dict[str, str]:
        return {name: sess.get_providers()[0] for name, sess in self._sessions.items()}

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._sessions.clear()
        self._busy_sessions.clear()
