"""Typed FastAPI dependencies: the application context, the service, the caller's identity.

The only place that reads ``app.state``: routes declare what they need as annotated parameters
(``service: ServiceDep``, ``identity: Identity``) and never look it up themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from ..admission import Admission
from ..auth import TokenStore, bearer_token
from ..errors import NotReady, Unauthorized
from ..service import OCRService
from ..settings import Settings


@dataclass
class AppContext:
    """What the application holds for its lifetime; ``service`` is set once the models are loaded."""

    settings: Settings
    tokens: TokenStore
    admission: Admission
    service: OCRService | None = None


def get_context(request: Request) -> AppContext:
    return request.app.state.context


Context = Annotated[AppContext, Depends(get_context)]


def get_service(ctx: Context) -> OCRService:
    if ctx.service is None:
        raise NotReady("the models are still loading")
    return ctx.service


def require_token(request: Request, ctx: Context) -> str:
    """The caller's token identity (not the token); 401 without a valid bearer token."""
    identity = ctx.tokens.identify(bearer_token(request.headers.get("authorization")))
    if identity is None:
        raise Unauthorized()
    return identity


def require_key(request: Request, ctx: Context) -> str:
    """The original API's ``?key=`` token; 401 (in that API's envelope) without a valid one."""
    identity = ctx.tokens.identify(request.query_params.get("key"))
    if identity is None:
        raise Unauthorized("Authentification error")
    return identity


ServiceDep = Annotated[OCRService, Depends(get_service)]
Identity = Annotated[str, Depends(require_token)]
KeyIdentity = Annotated[str, Depends(require_key)]
