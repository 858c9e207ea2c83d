"""The gateway's one mapping from errors to HTTP responses (http-api.md §1.3).

Handlers raise; `error_response` decides what the caller sees:

- `MeshError` (from a service, or the gateway's own checks): its `http_status`, body
  `{"detail": <str or object>}`, and `Retry-After` when the error carries one;
- `RequestInvalid`: FastAPI's 422 list form `{"detail": [{"type", "loc", "msg", "input", "ctx"?}]}`;
- Starlette routing errors: 404 `{"detail":"Not Found"}`, 405 `{"detail":"Method Not Allowed"}`
  (with `Allow`);
- anything else: 500 `{"detail": "<message>"}` — JSON where the reference sends plain text.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ExceptionHandler

from gateway_http.encoding import json_response
from kernel.errors import MeshError


class RequestInvalid(Exception):
    """Request validation failed; `items` are FastAPI/Pydantic error objects, in report order."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(items)} validation error(s)")
        self.items = items


def error_response(exc: Exception) -> Response:
    if isinstance(exc, MeshError):
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        return json_response({"detail": exc.detail}, exc.http_status, headers)
    if isinstance(exc, RequestInvalid):
        return json_response({"detail": exc.items}, 422)
    if isinstance(exc, HTTPException):
        return json_response({"detail": exc.detail}, exc.status_code, exc.headers)
    return json_response({"detail": str(exc) or type(exc).__name__}, 500)


async def _handle(request: Request, exc: Exception) -> Response:
    return error_response(exc)


def exception_handlers() -> dict[Any, ExceptionHandler]:
    """For `Starlette(exception_handlers=...)`.

    The `Exception` entry runs in Starlette's outermost middleware, which re-raises after
    answering so the server still logs the traceback.
    """
    return {MeshError: _handle, RequestInvalid: _handle, HTTPException: _handle, Exception: _handle}
