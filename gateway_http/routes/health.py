"""`GET /health`, `GET /api/health` and `GET /metrics` (http-api.md §2.1, §2.2, §2.4)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from gateway_http.encoding import json_response
from gateway_http.openapi.build import Operation, ok, ref
from gateway_http.routes import Endpoint


async def health(request: Request) -> Response:
    """Liveness only: no backend is called, so a probe never waits on a service."""
    return json_response({"status": "ok"})


async def metrics(request: Request) -> Response:
    return Response(generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


def endpoints(*, metrics_enabled: bool) -> list[Endpoint]:
    """`NOETL_DISABLE_METRICS=true` removes `/metrics`, so it answers 404."""
    alive = ok("Alive", ref("HealthStatus"))
    routes = [
        Endpoint(
            "/health",
            health,
            ("GET",),
            Operation("health_root", "health", "Liveness (no backend is called)", alive),
            root=True,
        ),
        Endpoint(
            "/health",
            health,
            ("GET",),
            Operation("health", "health", "Liveness (no backend is called)", alive),
        ),
    ]
    if metrics_enabled:
        text = {
            "200": {
                "description": "Metrics (data-model.md §12)",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        }
        summary = "Prometheus text exposition (absent when NOETL_DISABLE_METRICS=true)"
        routes.append(
            Endpoint("/metrics", metrics, ("GET",), Operation("metrics", "health", summary, text), root=True)
        )
    return routes
