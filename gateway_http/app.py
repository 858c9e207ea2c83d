"""The HTTP translation gateway: the NoETL JSON API (http-api.md) in front of the gRPC services.

Every `/api/<x>` route is also served as `/noetl/<x>` (§1.1). The `/noetl` prefix does not
enforce a session (§1.8 leaves it open): the gateway accepts the CLI's `Authorization` and
`x-session-token` headers and ignores them, as it does on `/api`.
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
from gateway_http.internal_gate import gated
from gateway_http.middleware import RequestMetrics, RequestTimeout, precreate_request_series
from gateway_http.routes import Endpoint, health
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

PREFIXES = ("/api", "/noetl")


def create_app(clients: GatewayClients, settings: GatewaySettings) -> Starlette:
    timeout = settings.rpc_timeout_seconds
    stream = StreamRoutes(EventFeeds(clients.events), timeout)
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
    routes = _routes(endpoints, settings.internal_api_token, settings.body_limits)
    # The web console (gateway_http/console): a page, not API, so outside both prefixes and the OpenAPI document.
    routes += ConsoleRoutes(clients.execution, stream, timeout).routes()
    middleware = [Middleware(Cors)]
    if settings.metrics_enabled:
        precreate_request_series(routes)
        middleware.append(Middleware(RequestMetrics))
    middleware.append(Middleware(RequestTimeout, seconds=settings.request_timeout_seconds))
    return Starlette(routes=routes, middleware=middleware, exception_handlers=exception_handlers())


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
