"""Prometheus metrics of the service (prometheus_client), correct with several worker processes.

With ``OCR_WORKERS`` > 1 the entry point sets ``PROMETHEUS_MULTIPROC_DIR`` before anything
imports prometheus_client, every worker writes its samples there, and ``/metrics`` (served by any
worker) aggregates all of them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from .errors import CAPACITY_REASONS, CLIENT_REASONS

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

HTTP_REQUESTS = Counter(
    "ocr_http_requests_total", "HTTP requests by route template, method and status code.", ["route", "method", "code"]
)
HTTP_DURATION = Histogram(
    "ocr_http_request_duration_seconds", "HTTP request latency by route template.", ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge("ocr_http_requests_in_flight", "HTTP requests being served now.", multiprocess_mode="livesum")
STAGE_DURATION = Histogram(
    "ocr_stage_duration_seconds", "Pipeline stage latency (decode, detection, crop, classification, "
    "recognition, total) by backend.", ["stage", "backend"], buckets=LATENCY_BUCKETS,
)
IMAGES = Counter("ocr_images_processed_total", "Images run through the pipeline.", ["backend"])
LINES = Counter("ocr_text_lines_total", "Text lines returned.", ["backend"])
BACKEND_ERRORS = Counter(
    "ocr_backend_errors_total", "Inference backend failures by kind (backend_unavailable, backend_error).",
    ["backend", "kind"],
)
JOBS_IN_FLIGHT = Gauge("ocr_jobs_in_flight", "OCR jobs holding a slot now.", multiprocess_mode="livesum")
JOBS_WAITING = Gauge("ocr_jobs_waiting", "OCR jobs queued for a slot now (the queue depth).", multiprocess_mode="livesum")
REJECTED = Counter(
    "ocr_rejected_total", "Requests refused before or instead of being served, by reason: the service's capacity or "
    f"state ({', '.join(CAPACITY_REASONS)}) or the client's fault ({', '.join(CLIENT_REASONS)}).", ["reason"],
)
BACKEND_UP = Gauge(
    "ocr_backend_up", "1 when the inference backend answered its last health check, else 0.", ["backend"],
    multiprocess_mode="livemin",
)
MEMORY_BUDGET = Gauge(
    "ocr_memory_budget_bytes", "The memory budget of requests: its capacity and what is reserved now.", ["kind"],
    multiprocess_mode="livesum",
)
MODEL_INFO = Gauge(
    "ocr_model_info", "Models in use and the execution provider each really runs on (value 1).",
    ["role", "model", "backend", "execution_provider"], multiprocess_mode="livemax",
)


def count_refusal(err) -> None:
    """Count a refused request by its reason (errors that carry one: see errors.OCRError.reason)."""
    if getattr(err, "reason", None):
        REJECTED.labels(err.reason).inc()


def exposition() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def process_exit() -> None:
    """Drop this worker's live gauges from the shared directory."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())
