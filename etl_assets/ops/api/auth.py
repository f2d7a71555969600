"""Who may call the API: bearer tokens mapped to roles (viewers read, operators also repair
and upload), compared in constant time, and the `Viewer` and `Operator` dependencies routes
declare.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from etl_assets.config import Settings
from etl_assets.ops.api.errors import ApiError


class Role:
    """What a token may do: viewers read, operators also repair and upload."""

    VIEWER = "viewer"
    OPERATOR = "operator"


def _tokens(raw: str) -> list[str]:
    return [t.strip() for t in raw.split(",") if t.strip()]


def auth_configured(settings: Settings) -> bool:
    """True when at least one viewer or operator token is set."""
    return bool(
        _tokens(settings.ops_api_viewer_tokens) or _tokens(settings.ops_api_operator_tokens)
    )


bearer = HTTPBearer(auto_error=False, description="A viewer or operator token from the settings.")


class Auth:
    """Maps bearer tokens to roles, comparing in constant time."""

    def __init__(self, settings: Settings, *, insecure: bool) -> None:
        self.operators = _tokens(settings.ops_api_operator_tokens)
        self.viewers = _tokens(settings.ops_api_viewer_tokens)
        self.insecure = insecure

    def role_of(self, token: str | None) -> str | None:
        if self.insecure:
            return Role.OPERATOR
        if not token:
            return None
        given = token.encode()
        if any(hmac.compare_digest(given, t.encode()) for t in self.operators):
            return Role.OPERATOR
        if any(hmac.compare_digest(given, t.encode()) for t in self.viewers):
            return Role.VIEWER
        return None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value (None for any other)."""
    scheme, token = get_authorization_scheme_param(authorization)
    return token if scheme.lower() == "bearer" and token else None


def authorize(auth: Auth, token: str | None, role: str) -> str:
    """The role of `token`, or ApiError 401 (no or unknown token) / 403 (a viewer's token
    where `role` is operator). The routes' dependencies and the request guard, which checks
    write requests before their body is read, both decide here."""
    found = auth.role_of(token)
    if found is None:
        message = "no bearer token given" if token is None else "unknown bearer token"
        raise ApiError(401, "unauthorized", f"{message}: send Authorization: Bearer <token>")
    if role == Role.OPERATOR and found != Role.OPERATOR:
        raise ApiError(403, "forbidden", "this needs an operator token; yours is a viewer's")
    return found


def _requires(role: str) -> Callable[..., Awaitable[str]]:
    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> str:
        return authorize(
            request.app.state.auth, credentials.credentials if credentials else None, role
        )

    return check


Viewer = Annotated[str, Depends(_requires(Role.VIEWER))]
Operator = Annotated[str, Depends(_requires(Role.OPERATOR))]
