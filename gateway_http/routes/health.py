"""`GET /health`, `GET /api/health` and `GET /metrics` (http-api.md §2.1, §2.2, §2.4)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from gateway_http.encoding import json_response
from gateway_http.routes import Endpoint


async def health(request: Request) -> Response:
    """Liveness only: no backend is called, so a probe never waits on a service."""
    return json_response({"status": "ok"})


async def metrics(request: Request) -> Response:
    return Response(generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


def endpoints(*, metrics_enabled: bool) -> list[Endpoint]:
    """`NOETL_DISABLE_METRICS=true` removes `/metrics`, so it answers 404."""
    routes = [
        Endpoint("/health", health, ("GET",), root=True),
        Endpoint("/health", health, ("GET",)),
    ]
    if metrics_enabled:
        routes.append(Endpoint("/metrics", metrics, ("GET",), root=True))
    return routes
