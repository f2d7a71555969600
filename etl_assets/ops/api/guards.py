"""What every request passes before a route reads it: a bounded body and, for a write, a
valid operator token.

FastAPI reads and parses a route's body (spooling a multipart upload to disk, parsing JSON
into memory) before it resolves the route's dependencies, the token check among them. So a
client without a token could make the server spool gigabytes before hearing 401. The guard
runs first, as ASGI middleware:

- a `Content-Length` over the route's limit is answered 413 before a byte of the body is
  read;
- a body without `Content-Length` (chunked) is counted as it arrives; the moment it passes the
  limit the client gets 413 and the route sees the body end (whatever it answers then is
  dropped);
- a write (POST, PUT, PATCH, DELETE) to an existing route needs an operator token, checked
  from the headers before the body is read: 401 or 403 at once.

The upload route's limit is OPS_API_MAX_UPLOAD_MB plus room for the multipart framing (the
file's exact size is checked again while it is copied); every other route's is
OPS_API_MAX_BODY_KB.
"""

from __future__ import annotations

from collections.abc import Collection, MutableMapping
from typing import Any

from starlette.routing import Match, Router

from etl_assets.ops.api.auth import Auth, Role, authorize, bearer_token
from etl_assets.ops.api.errors import ApiError, _error

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MULTIPART_SLACK_BYTES = 64 * 1024  # boundaries and part headers around the uploaded file

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


class RequestGuardMiddleware:
    """Bounds every request body and checks a write's token before the body is read (see the
    module doc). Sits inside `RequestIdMiddleware`, so its refusals carry a request id."""

    def __init__(
        self,
        app: Any,
        *,
        auth: Auth,
        router: Router,
        upload_paths: Collection[str],
        max_upload_bytes: int,
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.auth = auth
        self.router = router
        self.upload_paths = frozenset(upload_paths)
        self.max_upload_bytes = max_upload_bytes
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        refusal = self._declared_too_large(scope, limit) or self._unauthorized_write(scope)
        if refusal is not None:
            await _respond(refusal, scope, receive, send)
            return

        received = 0
        refused = False

        async def bounded_receive() -> Message:
            nonlocal received, refused
            if refused:  # however often the route asks again, no more of the body is read
                return {"type": "http.disconnect"}
            message: Message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    await _respond(self._too_large(scope), scope, receive, send)
                    # The route sees the client go away: it stops reading, nothing is kept.
                    return {"type": "http.disconnect"}
            return message

        async def send_unless_refused(message: Message) -> None:
            if not refused:  # after a 413, whatever the route answers is dropped
                await send(message)

        try:
            await self.app(scope, bounded_receive, send_unless_refused)
        except Exception:
            if not refused:
                raise
            # The route failed on the body cut short; the client has its 413 already.

    def _is_upload(self, scope: Scope) -> bool:
        # Only the upload itself: a GET of the same path (the job list) has the small limit.
        return scope["method"] == "POST" and scope["path"] in self.upload_paths

    def _limit(self, scope: Scope) -> int:
        if self._is_upload(scope):
            return self.max_upload_bytes + MULTIPART_SLACK_BYTES
        return self.max_body_bytes

    def _declared_too_large(self, scope: Scope, limit: int) -> ApiError | None:
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return self._too_large(scope)
        return None

    def _too_large(self, scope: Scope) -> ApiError:
        if self._is_upload(scope):
            limit_mb = self.max_upload_bytes / (1 << 20)
            return ApiError(413, "file_too_large", f"the upload is larger than {limit_mb:g} MB")
        limit_kb = self.max_body_bytes / 1024
        return ApiError(413, "body_too_large", f"the request body is larger than {limit_kb:g} KB")

    def _unauthorized_write(self, scope: Scope) -> ApiError | None:
        """401/403 for a write to a route that exists, from the headers alone; unknown routes
        and methods are left to the router (404, 405)."""
        if scope["method"] in SAFE_METHODS or not self._is_route(scope):
            return None
        try:
            authorize(self.auth, bearer_token(_header(scope, b"authorization")), Role.OPERATOR)
        except ApiError as refused:
            return refused
        return None

    def _is_route(self, scope: Scope) -> bool:
        return any(route.matches(scope)[0] is Match.FULL for route in self.router.routes)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def _respond(error: ApiError, scope: Scope, receive: Any, send: Any) -> None:
    rid = scope.get("state", {}).get("request_id")
    response = _error(error.status, error.code, error.message, rid=rid)
    if error.status == 413:  # the rest of the body is not read: the connection cannot be reused
        response.headers["connection"] = "close"
    await response(scope, receive, send)
