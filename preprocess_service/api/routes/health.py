from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ...schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive (no token needed)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(request: Request):
    """The models are loaded and the backend can serve (no token needed)."""
    service = getattr(request.app.state, "service", None)
    settings = request.app.state.settings
    if service is None:
        body = Readiness(ready=False, backend=settings.backend, models=settings.model_names, detail="loading models")
        return JSONResponse(body.model_dump(), status_code=503)
    if request.app.state.admission.draining:
        body = Readiness(ready=False, backend=service.backend.name, models=service.pipeline.model_names,
                         detail="shutting down")
        return JSONResponse(body.model_dump(), status_code=503)
    ok = await service.backend.ready()
    body = Readiness(ready=ok, backend=service.backend.name, models=service.pipeline.model_names,
                     detail=None if ok else "backend not ready")
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
