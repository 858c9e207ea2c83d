"""The HTTP translation gateway: the NoETL JSON API (http-api.md) in front of the gRPC services.

Every `/api/<x>` route is also served as `/noetl/<x>` (§1.1). The `/noetl` prefix does not
enforce a session (§1.8 leaves it open): the gateway accepts the CLI's `Authorization` and
`x-session-token` headers and ignores them, as it does on `/api`, unless HTTP auth is switched on
(`gateway_http.http_auth`, docs/security.md): then both prefixes need a bearer token.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from gateway_http.body_limits import BodyLimits, limited
from gateway_http.clients import GatewayClients
from gateway_http.console import ConsoleRoutes
from gateway_http.cors import Cors
from gateway_http.errors import exception_handlers
from gateway_http.event_feeds import EventFeeds
from gateway_http.http_auth import HttpAuth
from gateway_http.internal_gate import gated
from gateway_http.middleware import RequestMetrics, RequestTimeout, precreate_request_series
from gateway_http.openapi.document import DocumentRoute
from gateway_http.route_index import IndexedRouter
from gateway_http.routes import PREFIXES, Endpoint, health
from gateway_http.routes.admin import AdminRoutes
from gateway_http.routes.catalog import CatalogRoutes
from gateway_http.routes.commands import CommandRoutes
from gateway_http.routes.credentials import CredentialRoutes
from gateway_http.routes.events import EventRoutes
from gateway_http.routes.executions import ExecutionRoutes
from gateway_http.routes.internal import InternalRoutes
from gateway_http.routes.keychain import KeychainRoutes
from gateway_http.routes.pools import PoolRoutes
from gateway_http.routes.results import ResultRoutes
from gateway_http.routes.runtime import RuntimeRoutes
from gateway_http.routes.stream import StreamRoutes
from gateway_http.routes.vars import VarsRoutes
from gateway_http.routes.wallet import WalletRoutes
from gateway_http.settings import GatewaySettings
from gateway_http.validation import address_checked


def create_app(clients: GatewayClients, settings: GatewaySettings) -> Starlette:
    stream = StreamRoutes(EventFeeds(clients.events), settings.rpc_timeout_seconds)
    routes = _routes(
        api_endpoints(clients, settings, stream), settings.internal_api_token, settings.body_limits
    )
    # The web console (gateway_http/console): a page, not API, so outside both prefixes and the OpenAPI document.
    routes += ConsoleRoutes(clients.execution, stream, settings.rpc_timeout_seconds).routes()
    middleware = [Middleware(Cors)]
    if settings.metrics_enabled:
        precreate_request_series(routes)
        middleware.append(Middleware(RequestMetrics))
    middleware.append(Middleware(RequestTimeout, seconds=settings.request_timeout_seconds))
    if settings.http_auth.enabled:
        # Innermost: refusals are counted and carry CORS headers like any other answer.
        middleware.append(Middleware(HttpAuth, settings=settings.http_auth))
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=exception_handlers())
    # Same table, same order, matched by path first (gateway_http/route_index.py). Set before the
    # first request, when Starlette builds its middleware stack around `app.router`.
    app.router = IndexedRouter(routes)
    return app


def api_endpoints(
    clients: GatewayClients, settings: GatewaySettings, stream: StreamRoutes | None = None
) -> list[Endpoint]:
    """Every API route, in route-table order; the last serves the OpenAPI document of them all.

    `stream` is shared with the console when the app has one (one upstream feed per execution).
    """
    timeout = settings.rpc_timeout_seconds
    stream = stream or StreamRoutes(EventFeeds(clients.events), timeout)
    endpoints = [
        *health.endpoints(metrics_enabled=settings.metrics_enabled),
        *AdminRoutes(clients.execution, timeout).endpoints(),
        *CatalogRoutes(clients.catalog, timeout).endpoints(),
        *ExecutionRoutes(clients.execution, clients.events, timeout).endpoints(),
        *stream.endpoints(),
        *EventRoutes(clients.events, timeout, display_redaction=settings.display_redaction).endpoints(),
        *CommandRoutes(clients.execution, timeout).endpoints(),
        *VarsRoutes(clients.execution, timeout).endpoints(),
        *ResultRoutes(clients.execution, timeout).endpoints(),
        *PoolRoutes(
            clients.execution,
            timeout,
            default_pool_name=settings.worker_pool_name,
            auto_recreate=settings.worker_pool_auto_recreate,
        ).endpoints(),
        *InternalRoutes(clients.outbox, clients.events, timeout).endpoints(),
        *CredentialRoutes(clients.secrets, timeout).endpoints(),
        *KeychainRoutes(clients.secrets, timeout).endpoints(),
        *WalletRoutes(clients.secrets, timeout).endpoints(),
        *RuntimeRoutes(settings).endpoints(),
    ]
    return [*endpoints, DocumentRoute(endpoints).endpoint]


def _routes(endpoints: list[Endpoint], internal_token: str, limits: BodyLimits) -> list[BaseRoute]:
    """One route per prefix, so a route's template (the metrics label) is its full path."""
    routes: list[BaseRoute] = []
    for endpoint in endpoints:
        handler = address_checked(limited(endpoint.handler, *limits.for_path(endpoint.path)))
        if endpoint.internal:
            handler = gated(handler, internal_token)  # the gate answers before any validation
        for prefix in ("",) if endpoint.root else PREFIXES:
            routes.append(Route(prefix + endpoint.path, handler, methods=list(endpoint.methods)))
    return routes
