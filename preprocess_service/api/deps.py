"""Typed FastAPI dependencies: the application context, the service, the caller's identity.

The only place that reads ``app.state``: routes declare what they need as annotated parameters
(``service: ServiceDep``, ``identity: Identity``) and never look it up themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from ..admission import Admission
from ..auth import TokenStore
from ..errors import BackendUnavailable, NotReady, OCRError, Unauthorized
from ..service import OCRService
from ..settings import Settings


@dataclass
class AppContext:
    """What the application holds for its lifetime; ``service`` is set once the models are loaded."""

    settings: Settings
    tokens: TokenStore
    admission: Admission
    service: OCRService | None = None
    remote: bool = False  # the backend is another server (asked of the backend when it is made)

    def not_serving_yet(self) -> OCRError:
        """What an OCR request gets before the service is up: a remote backend may come later
        (503 backend_unavailable, retry shortly), local models are still loading (503 not_ready)."""
        if self.remote:
            return BackendUnavailable("the inference server is not serving the models yet; retry shortly",
                                      retry_after_s=5)
        return NotReady("the models are still loading")


def get_context(request: Request) -> AppContext:
    return request.app.state.context


Context = Annotated[AppContext, Depends(get_context)]


def get_service(ctx: Context) -> OCRService:
    if ctx.service is None:
        raise ctx.not_serving_yet()
    return ctx.service


# Declared in OpenAPI, so /docs has a working Authorize button and generated clients know the
# scheme; the checks themselves stay ours (constant-time, one envelope per contract).
BEARER = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer <token>`.")
KEY = APIKeyQuery(name="key", auto_error=False, description="The original API's token, as `?key=<token>`.")


def require_token(ctx: Context, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> str:
    """The caller's token identity (not the token); 401 without a valid bearer token."""
    presented = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else None
    identity = ctx.tokens.identify(presented)
    if identity is None:
        raise Unauthorized()
    return identity


def require_key(ctx: Context, key: Annotated[str | None, Depends(KEY)]) -> str:
    """The original API's ``?key=`` token; 401 (in that API's envelope) without a valid one."""
    identity = ctx.tokens.identify(key)
    if identity is None:
        raise Unauthorized("Authentification error")
    return identity


ServiceDep = Annotated[OCRService, Depends(get_service)]
Identity = Annotated[str, Depends(require_token)]
KeyIdentity = Annotated[str, Depends(require_key)]
