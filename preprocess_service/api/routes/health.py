from __future__ import annotations

from typing import cast

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ...schemas import Health, Readiness
from ..deps import Context

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive (no token needed)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(ctx: Context) -> JSONResponse:
    """The models are loaded and the backend can serve (no token needed)."""
    service = ctx.service
    if service is None:
        body = Readiness(ready=False, backend=ctx.settings.backend, models=cast(dict[str, str | None], ctx.settings.model_names),
                         detail="loading models")
        return JSONResponse(body.model_dump(), status_code=503)
    if ctx.admission.draining:
        body = Readiness(ready=False, backend=service.backend.name, models=service.model_names,
                         detail="shutting down")
        return JSONResponse(body.model_dump(), status_code=503)
    ok = await service.ready()
    body = Readiness(ready=ok, backend=service.backend.name, models=service.model_names,
                     detail=None if ok else "backend not ready")
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
