"""The internal token gate (http-api.md §1.8, data-model.md §7), the one check of every gated route.

Routes declared with `Endpoint(..., internal=True)` are wrapped by `gated` when the app is built,
so the check runs before the handler reads its body: a bad token wins over a bad body. Unknown
paths and wrong methods are answered by the router first (404/405), as in the reference, whose
gate is a router dependency.
"""

from __future__ import annotations

import hmac

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway_http.routes import Handler

NOT_CONFIGURED = (
    "Internal API not configured: NOETL_INTERNAL_API_TOKEN env var unset on the server.  "
    "Set it to the system worker pool's ServiceAccount token before calling /api/internal/* endpoints."
)
MISSING_HEADER = "Internal API requires Authorization header with Bearer token."
BAD_SCHEME = "Internal API requires 'Bearer <token>' Authorization scheme."
WRONG_TOKEN = "Invalid service-account token for /api/internal/*."


def check(expected: str, authorization: str | None) -> None:
    """Passes a request carrying `Bearer <expected>`.

    `expected` is the configured token, already trimmed; empty means not configured.

    Raises:
        HTTPException: 503 when no token is configured, 403 for a missing header, another
            scheme, an empty token or a different token.
    """
    if not expected:
        raise HTTPException(503, NOT_CONFIGURED)
    if not authorization:
        raise HTTPException(403, MISSING_HEADER)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(403, BAD_SCHEME)
    # Bytes: compare_digest refuses non-ASCII str, and a header may carry any Latin-1 text.
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(403, WRONG_TOKEN)


def gated(handler: Handler, expected: str) -> Handler:
    """`handler` behind the gate; the errors go through the app's one error mapping."""

    async def guarded(request: Request) -> Response:
        check(expected, request.headers.get("authorization"))
        return await handler(request)

    guarded.__name__ = getattr(handler, "__name__", "guarded")
    return guarded
