"""The FastAPI application: middleware, routes, error handlers; its lifespan is ``api.lifecycle``."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.formparsers import MultiPartParser

from .. import logredact
from ..admission import Admission
from ..auth import TokenStore
from ..backends import InferenceBackend
from ..settings import Settings, get_settings
from . import errors, lifecycle
from .context import RequestContext
from .deps import AppContext
from .ingress import Ingress
from .routes import demo, docs, health, legacy, ocr, paddlex
from .routes import metrics as metrics_route


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

    app = FastAPI(
        title="OCR service",
        version="0.1.0",
        description="PaddleOCR detection + recognition (ONNX) behind one JSON API. "
        "Send a base64 image with a bearer token; get every text line with its box and confidence.",
        lifespan=lifecycle.lifespan(context, backend),
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
    known = {getattr(r, "path", "") for router in routers for r in router.routes} - {""}
    app.add_middleware(RequestContext, known_paths=known | {"/openapi.json"})
    return app
