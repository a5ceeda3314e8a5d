"""Liveness and readiness: /healthz (the process answers) and /readyz (models loaded, backend serving, not draining)."""

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
    """This pod can answer (no token needed): 503 only while it loads local models or shuts down.

    A remote backend (Triton) that is down does not take the pod out of the Service: every API
    pod would leave at once and clients would get connection errors. The pod stays ready and
    answers OCR requests with 503 ``backend_unavailable`` and Retry-After; ``backend_ready``
    says whether the backend serves now (also the metric ``ocr_backend_up``)."""
    s = ctx.settings
    models = cast(dict[str, str | None], s.model_names)
    if ctx.admission.draining:
        return _readiness(False, s.backend, models, None, "shutting down", 503)
    service = ctx.service
    if service is None:
        if ctx.remote:
            return _readiness(True, s.backend, models, False, "the inference server is not serving the models yet: "
                              "OCR requests get 503 backend_unavailable", 200)
        return _readiness(False, s.backend, models, False, "loading models", 503)
    up = await service.ready()
    detail = None if up else "the inference backend is not serving: OCR requests get 503 backend_unavailable"
    return _readiness(True, service.backend.name, service.model_names, up, detail, 200, service.input_shapes())


def _readiness(ready: bool, backend: str, models: dict[str, str | None], backend_ready: bool | None,
               detail: str | None, status: int, shapes: dict[str, list[list[int]]] | None = None) -> JSONResponse:
    body = Readiness(ready=ready, backend=backend, models=models, backend_ready=backend_ready, detail=detail,
                     input_shapes=shapes)
    return JSONResponse(body.model_dump(), status_code=status)
