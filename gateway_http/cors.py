"""CORS as http-api.md §1.6 states it.

The contract describes Starlette's `CORSMiddleware(allow_origins=["*"], allow_credentials=True,
allow_methods=["*"], allow_headers=["*"])` as the reference ran it. The Starlette installed here
differs in two ways, so this small middleware states the contract directly:

- it echoes the `Origin` on every credentialed simple response, where the contract sends `*`
  and echoes the origin only when the request carries a `Cookie`;
- its `"*"` method list includes `QUERY`, which the contract's preflight answer does not.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOWED_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
MAX_AGE_SECONDS = 600


class Cors:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await _preflight(origin, headers)(scope, receive, send)
            return
        echo_origin = "cookie" in headers

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                response_headers["Access-Control-Allow-Origin"] = origin if echo_origin else "*"
                response_headers["Access-Control-Allow-Credentials"] = "true"
                if echo_origin:
                    response_headers.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _preflight(origin: str, request_headers: Headers) -> PlainTextResponse:
    """Every origin and header is allowed; only a method outside the list is refused (400)."""
    headers = {
        "Vary": "Origin",
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": ", ".join(ALLOWED_METHODS),
        "Access-Control-Max-Age": str(MAX_AGE_SECONDS),
        "Access-Control-Allow-Credentials": "true",
    }
    requested_headers = request_headers.get("access-control-request-headers")
    if requested_headers is not None:
        headers["Access-Control-Allow-Headers"] = requested_headers
    if request_headers["access-control-request-method"] not in ALLOWED_METHODS:
        return PlainTextResponse("Disallowed CORS method", status_code=400, headers=headers)
    return PlainTextResponse("OK", status_code=200, headers=headers)
