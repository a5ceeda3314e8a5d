"""Embedded backend: the repository's ONNX models run in-process by onnxruntime (CPU or GPU)."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..model_spec import model_file
from .base import InferenceBackend, ModelIO

log = logging.getLogger(__name__)

GRAPH_OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
EXECUTION_MODE = {"sequential": ort.ExecutionMode.ORT_SEQUENTIAL, "parallel": ort.ExecutionMode.ORT_PARALLEL}


class OnnxRuntimeBackend(InferenceBackend):
    name = "onnxruntime"

    def __init__(self, repository: Path, providers: list[str], intra_op_threads: int, workers: int = 1,
                 graph_optimization: str = "all", cpu_mem_arena: bool = False, execution_mode: str = "sequential",
                 inter_op_threads: int = 1, allow_cpu_fallback: bool = False,
                 model_intra_op_threads: dict[str, int] | None = None):
        self._repository = Path(repository)
        self._providers = providers
        self._intra = intra_op_threads
        self._inter = inter_op_threads
        self._graph_optimization = GRAPH_OPTIMIZATION[graph_optimization]
        self._arena = cpu_mem_arena
        self._execution_mode = EXECUTION_MODE[execution_mode]
        self._allow_fallback = allow_cpu_fallback
        self._model_intra = dict(model_intra_op_threads or {})
        self._sessions: dict[str, ort.InferenceSession] = {}
        self._io: dict[str, ModelIO] = {}
        # Model runs happen on these threads, off the event loop; workers x intra-op threads is
        # the core count, so the cores stay busy without being oversubscribed.
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ort")

    def _options(self, model: str) -> ort.SessionOptions:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self._model_intra.get(model, self._intra)
        opts.inter_op_num_threads = self._inter
        opts.execution_mode = self._execution_mode
        opts.graph_optimization_level = self._graph_optimization
        opts.enable_cpu_mem_arena = self._arena
        opts.log_severity_level = 3
        return opts

    def _open(self, model: str) -> None:
        path = model_file(self._repository / model)
        available = set(ort.get_available_providers())
        providers = [p for p in self._providers if p in available] or ["CPUExecutionProvider"]
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

    async def run(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        sess = self._sessions[model]
        outputs = list(outputs or self._io[model].outputs)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._executor, sess.run, outputs, inputs)
        return dict(zip(outputs, result))

    async def ready(self) -> bool:
        return bool(self._sessions)

    def describe(self) -> dict[str, str]:
        return {name: sess.get_providers()[0] for name, sess in self._sessions.items()}

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._sessions.clear()
