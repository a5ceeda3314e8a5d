"""GET /metrics: the Prometheus exposition of this process (of every worker process in multi-process mode)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from ... import metrics

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    """Prometheus exposition (no token: scrape it from inside the cluster only)."""
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
