"""The FastAPI application: lifespan (models load, warm up), middleware, routes, error handlers."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.formparsers import MultiPartParser

from .. import logredact, metrics
from ..admission import Admission
from ..auth import TokenStore
from ..backends import InferenceBackend, create_backend
from ..errors import OCRError
from ..service import OCRService
from ..settings import Settings, get_settings
from . import errors
from .context import RequestContext
from .deps import AppContext
from .ingress import Ingress
from .routes import demo, docs, health, legacy, ocr, paddlex
from .routes import metrics as metrics_route

log = logging.getLogger("preprocess_service")


def create_app(settings: Settings | None = None, backend: InferenceBackend | None = None) -> FastAPI:
    """The application; ``backend`` replaces the one the settings name (the in-process API tests
    pass a fake one)."""
    settings = settings or get_settings()
    logredact.install()
    tokens = TokenStore(settings.api_tokens, settings.api_tokens_file)
    admission = Admission.from_settings(settings)
    # Uploaded files stay in memory, where the ingress has already reserved their bytes from the
    # memory budget, instead of spilling to a temporary directory that no limit covers.
    MultiPartParser.spool_max_size = settings.max_body_bytes
    context = AppContext(settings, tokens, admission)

    def install_drain_on_sigterm() -> None:
        """SIGTERM: readiness false and new OCR requests refused at once; after
        OCR_SHUTDOWN_DELAY_S the server's own graceful shutdown lets in-flight requests finish."""
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

    async def load(chosen: InferenceBackend) -> None:
        service = context.service = await OCRService.create(settings, chosen, admission)
        providers = chosen.describe()
        for role, model in service.pipeline.model_names.items():
            if model:
                metrics.MODEL_INFO.labels(role, model, chosen.name, providers.get(model, "unknown")).set(1)
        log.info(
            "ready: backend=%s models=%s providers=%s tokens=%d memory_budget_mib=%d",
            chosen.name, service.pipeline.model_names, providers, tokens.count, admission.budget.capacity // 2**20,
        )

    async def load_until_served(chosen: InferenceBackend) -> None:
        """A remote backend (Triton) may be down or still loading: keep trying in the background
        while the API listens and answers OCR requests with 503 backend_unavailable."""
        delay = 1.0
        while True:
            try:
                return await load(chosen)
            except (OCRError, RuntimeError, OSError) as exc:
                log.warning("inference backend not serving yet (%s); retrying in %gs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def watch(chosen: InferenceBackend) -> None:
        """ocr_backend_up: the backend answered its last health check (0 while Triton is unreachable)."""
        while True:
            up = context.service is not None and await chosen.ready()
            metrics.BACKEND_UP.labels(chosen.name).set(1 if up else 0)
            await asyncio.sleep(settings.backend_check_interval_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        chosen = backend or create_backend(settings)
        context.remote = chosen.remote
        install_drain_on_sigterm()
        tasks = []
        try:
            if chosen.remote:
                tasks.append(asyncio.create_task(load_until_served(chosen)))
            else:
                await load(chosen)  # local models: a failure to load is a failure to start
            tasks.append(asyncio.create_task(watch(chosen)))
            yield
        finally:
            for task in tasks:
                task.cancel()
            if context.service is not None:
                context.service.close()
            context.service = None
            await chosen.close()
            metrics.process_exit()

    app = FastAPI(
        title="OCR service",
        version="0.1.0",
        description="PaddleOCR detection + recognition (ONNX) behind one JSON API. "
        "Send a base64 image with a bearer token; get every text line with its box and confidence.",
        lifespan=lifespan,
        docs_url=None,  # served by routes/docs.py with local assets
        redoc_url=None,
    )
    app.state.context = context
    errors.install(app)
    routers = (health.router, ocr.router, legacy.router, paddlex.router, demo.router, docs.router, metrics_route.router)
    for router in routers:
        app.include_router(router)
    app.mount(docs.ASSETS_URL, docs.ASSETS, name="docs-assets")
    app.add_middleware(Ingress, context=context, routers=routers)  # the gate finds the body routes in them
    if settings.cors_origins:  # off unless origins are configured
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"], expose_headers=["X-Request-ID"],
        )
    # outermost: sees every request, including those refused by the size limit
    app.add_middleware(RequestContext, known_paths={getattr(r, "path", "") for r in app.routes})
    return app
