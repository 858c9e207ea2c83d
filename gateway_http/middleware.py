"""Cross-cutting ASGI middleware: request counting and the request deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from prometheus_client import Counter
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Imported for its side effect: it registers `noetl_server_build_info` (data-model.md §12.1).
import kernel.metrics  # noqa: F401
from gateway_http.encoding import json_response

REQUESTS = Counter(
    "noetl_request_total", "HTTP requests served by the gateway", ["route", "method", "status"]
)
# Raw paths carry ids; requests that match no route share one label value instead.
UNMATCHED = "unmatched"
TIMEOUT_DETAIL = "Request processing time exceeded the maximum timeout"


def precreate_request_series(routes: Iterable[BaseRoute]) -> None:
    """Labelled series exist at 0 from startup (data-model.md §12.1)."""
    for route in routes:
        if isinstance(route, Route):
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    REQUESTS.labels(route.path, method, "200")


class RequestMetrics:
    """Counts every HTTP request by route template, method and status (500 when the app raised)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            # The router leaves the matched route in the scope it was given.
            route = scope.get("route")
            template = route.path if isinstance(route, Route) else UNMATCHED
            REQUESTS.labels(template, scope["method"], str(status)).inc()


class RequestTimeout:
    """http-api.md §1.1: a request still unanswered after `seconds` gets 504 (JSON, unlike the reference)."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        deadline = asyncio.timeout(self.seconds)

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                # Only the wait for an answer is bounded: a stream (SSE) may then run for as
                # long as its execution does (§1.1 exempts streaming routes).
                deadline.reschedule(None)
            await send(message)

        try:
            async with deadline:
                await self.app(scope, receive, tracking_send)
        except TimeoutError:
            # A timeout raised by the handler itself, or one after the response began, is not ours to answer.
            if started or not deadline.expired():
                raise
            await json_response({"detail": TIMEOUT_DETAIL}, 504)(scope, receive, send)
