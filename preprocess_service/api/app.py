"""The FastAPI application: lifespan (models load, warm up), middleware, routes, error handlers."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .. import logredact, metrics
from ..auth import TokenStore
from ..backends import create_backend
from ..service import OCRService
from ..settings import Settings, get_settings
from . import errors
from .context import RequestContext
from .limits import BodySizeLimit
from .routes import health, ocr
from .routes import metrics as metrics_route

log = logging.getLogger("preprocess_service")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    logredact.install()
    tokens = TokenStore(settings.api_tokens, settings.api_tokens_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        backend = create_backend(settings)
        try:
            app.state.service = await OCRService.create(settings, backend)
            providers = backend.describe()
            for role, model in app.state.service.pipeline.model_names.items():
                if model:
                    metrics.MODEL_INFO.labels(role, model, backend.name, providers.get(model, "unknown")).set(1)
            log.info(
                "ready: backend=%s models=%s providers=%s tokens=%d",
                backend.name, app.state.service.pipeline.model_names, backend.describe(), tokens.count,
            )
            yield
        finally:
            app.state.service = None
            await backend.close()
            metrics.process_exit()

    app = FastAPI(
        title="OCR service",
        version="0.1.0",
        description="PaddleOCR detection + recognition (ONNX) behind one JSON API. "
        "Send a base64 image with a bearer token; get every text line with its box and confidence.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.tokens = tokens
    app.state.service = None
    errors.install(app)
    app.include_router(health.router)
    app.include_router(ocr.router)
    app.include_router(metrics_route.router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # outermost: sees every request, including those refused by the size limit
    app.add_middleware(RequestContext, known_paths={getattr(r, "path", "") for r in app.routes})
    return app
