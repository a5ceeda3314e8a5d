"""Inference backends behind one interface (``base.InferenceBackend``)."""

from __future__ import annotations

from ..settings import Settings
from .base import InferenceBackend, ModelIO, request_deadline
from .triton_endpoints import Resolver


def create_backend(settings: Settings, triton_resolver: Resolver | None = None) -> InferenceBackend:
    """The configured backend; with shape buckets on, behind a ``BucketedBackend`` that pads each
    model's batches to the allowed sizes (and, in-process, batches across requests).
    ``triton_resolver`` replaces DNS for OCR_TRITON_BALANCE=dns (a benchmark scripts a headless
    Service's answers with it)."""
    backend = _backend(settings, triton_resolver)
    if not settings.buckets_on:
        return backend
    from .batching import BucketedBackend

    names = settings.model_names
    sizes = {names["det"]: tuple(settings.det_batch_sizes), names["rec"]: tuple(settings.rec_batch_sizes)}
    if names["cls"]:
        sizes[names["cls"]] = tuple(settings.rec_batch_sizes)
    # Triton batches across requests itself: in front of it only the padding
    return BucketedBackend(backend, sizes, 0 if backend.remote else settings.batch_delay_us)


def _backend(settings: Settings, triton_resolver: Resolver | None) -> InferenceBackend:
    if settings.backend == "onnxruntime":
        from .onnxruntime_backend import CudaOptions, OnnxRuntimeBackend

        return OnnxRuntimeBackend(
            settings.model_repository,
            providers=settings.ort_providers,
            intra_op_threads=settings.intra_op_threads,
            workers=settings.inference_workers,
            graph_optimization=settings.ort_graph_optimization,
            cpu_mem_arena=settings.ort_cpu_mem_arena,
            execution_mode=settings.ort_execution_mode,
            inter_op_threads=settings.ort_inter_op_threads,
            allow_cpu_fallback=settings.ort_allow_cpu_fallback,
            model_intra_op_threads={settings.model_names["det"]: settings.det_intra_op_threads},
            busy_intra_op_threads={settings.model_names["det"]: settings.det_busy_intra_op_threads},
            cuda_options=CudaOptions.from_settings(settings),
        )
    if settings.backend == "triton":
        from .triton_backend import ShmOptions, TritonBackend

        return TritonBackend(
            settings.triton_url,
            timeout_s=settings.triton_timeout_s,
            retries=settings.triton_retries,
            startup_timeout_s=settings.triton_startup_timeout_s,
            shm=ShmOptions.from_settings(settings),
            balance=settings.triton_balance,
            resolve_every_s=settings.triton_resolve_s,
            resolver=triton_resolver,
        )
    if settings.backend == "openvino":
        try:
            from .openvino_backend import OpenVinoBackend, OpenVinoOptions
        except ImportError as exc:  # the optional extra: pip install 'preprocess-service[openvino]'
            raise ValueError("OCR_BACKEND=openvino needs the openvino package (the [openvino] extra)") from exc

        return OpenVinoBackend(settings.model_repository, OpenVinoOptions.from_settings(settings))
    raise ValueError(f"backend {settings.backend!r} is not available in this build")


__all__ = ["InferenceBackend", "ModelIO", "create_backend", "request_deadline"]
