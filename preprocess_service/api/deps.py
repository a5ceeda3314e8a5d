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


def require_token(request: Request) -> str:
    """The caller's token identity (not the token); 401 without a valid one."""
    store: TokenStore = request.app.state.tokens
    identity = store.identify(bearer_token(request.headers.get("authorization")))
    if identity is None:
        raise Unauthorized()
    return identity
