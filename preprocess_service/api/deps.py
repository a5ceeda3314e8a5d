"""FastAPI dependencies: the service object and the bearer-token check."""

from __future__ import annotations

from fastapi import Request

from ..auth import TokenStore, bearer_token
from ..errors import NotReady, Unauthorized
from ..service import OCRService


def get_service(request: Request) -> OCRService:
    service = getattr(request.app.state, "service", None)
    if service is None:
        raise NotReady("the models are still loading")
    return service


def require_token(request: Request) -> None:
    store: TokenStore = request.app.state.tokens
    if not store.verify(bearer_token(request.headers.get("authorization"))):
        raise Unauthorized()
