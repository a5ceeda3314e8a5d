"""The application's life: load the models (or keep trying, for a remote backend), watch the
backend, drain on SIGTERM, release everything at the end. ``lifespan`` is what ``create_app``
hands FastAPI; the rest are its steps, each on the one ``AppContext``."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .. import metrics
from ..backends import InferenceBackend, create_backend
from ..errors import OCRError
from ..service import OCRService
from .deps import AppContext

log = logging.getLogger("preprocess_service")


def install_drain_on_sigterm(context: AppContext) -> None:
    """SIGTERM: readiness false and new OCR requests refused at once; after
    OCR_SHUTDOWN_DELAY_S the server's own graceful shutdown lets in-flight requests finish."""
    settings, admission = context.settings, context.admission
    server_handler = signal.getsignal(signal.SIGTERM)
    if not callable(server_handler):
        return
    loop = asyncio.get_running_loop()

    def on_sigterm(sig, frame):
        if not admission.draining:
            admission.draining = True
            # in-flight work gets until just before uvicorn's graceful timeout cancels it
            loop.call_soon_threadsafe(admission.start_draining, settings.shutdown_delay_s + settings.shutdown_grace_s - 1)
            log.info("SIGTERM: draining (%d in flight), stopping in %gs", admission.in_flight, settings.shutdown_delay_s)
            loop.call_soon_threadsafe(loop.call_later, settings.shutdown_delay_s, server_handler, sig, frame)
        else:
            server_handler(sig, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


async def load(context: AppContext, chosen: InferenceBackend) -> None:
    """The service on ``chosen``: models loaded and warmed up, the memory budget sized."""
    service = context.service = await OCRService.create(context.settings, chosen, context.admission)
    providers = chosen.describe()
    for role, model in service.pipeline.model_names.items():
        if model:
            metrics.MODEL_INFO.labels(role, model, chosen.name, providers.get(model, "unknown")).set(1)
    log.info(
        "ready: backend=%s models=%s providers=%s tokens=%d memory_budget_mib=%d",
        chosen.name, service.pipeline.model_names, providers, context.tokens.count,
        context.admission.budget.capacity // 2**20,
    )


async def load_until_served(context: AppContext, chosen: InferenceBackend) -> None:
    """A remote backend (Triton) may be down or still loading: keep trying in the background
    while the API listens and answers OCR requests with 503 backend_unavailable."""
    delay = 1.0
    while True:
        try:
            return await load(context, chosen)
        except (OCRError, RuntimeError, OSError) as exc:
            log.warning("inference backend not serving yet (%s); retrying in %gs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


async def watch(context: AppContext, chosen: InferenceBackend) -> None:
    """ocr_backend_up: the backend answered its last health check (0 while Triton is unreachable)."""
    while True:
        up = context.service is not None and await chosen.ready()
        metrics.BACKEND_UP.labels(chosen.name).set(1 if up else 0)
        await asyncio.sleep(context.settings.backend_check_interval_s)


def lifespan(context: AppContext, backend: InferenceBackend | None = None):
    """FastAPI's lifespan: ``backend`` replaces the one the settings name (the API tests' fake)."""

    @asynccontextmanager
    async def run(app: FastAPI):
        chosen = backend or create_backend(context.settings)
        context.remote = chosen.remote
        install_drain_on_sigterm(context)
        tasks = []
        try:
            if chosen.remote:
                tasks.append(asyncio.create_task(load_until_served(context, chosen)))
            else:
                await load(context, chosen)  # local models: a failure to load is a failure to start
            tasks.append(asyncio.create_task(watch(context, chosen)))
            yield
        finally:
            for task in tasks:
                task.cancel()
            if context.service is not None:
                context.service.close()
            context.service = None
            await chosen.close()
            metrics.process_exit()

    return run
