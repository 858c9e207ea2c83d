"""`IndexedRouter` answers every request with the route Starlette's full walk would choose.

Two ways: on a small table that puts order, methods, parameters and prefixes at odds (answers
compared request by request with a plain `Router` app), and on the gateway's real route table
(the routes a narrowed router keeps choose as the whole table does, for every served path).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, Route

from gateway_http.app import create_app
from gateway_http.clients import GatewayClients
from gateway_http.route_index import MAX_PATHS, IndexedRouter
from gateway_http.settings import GatewaySettings
from tests.helpers.nowhere import NOWHERE_ENV


def _route(path: str, name: str, methods: list[str]) -> Route:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(f"{name} {dict(request.path_params)}")

    return Route(path, endpoint, methods=methods)


TABLE: list[BaseRoute] = [
    _route("/api/executions/{execution_id}", "detail", ["GET"]),
    _route("/api/executions/cleanup", "cleanup", ["POST"]),
    _route("/api/executions/{execution_id:int}/status", "status-int", ["GET"]),
    _route("/api/executions/{execution_id}/status", "status-any", ["GET", "DELETE"]),
    _route("/api/events", "emit", ["POST"]),
    _route("/api/events/{event_id}", "event", ["GET"]),
    _route("/noetl/events", "emit-noetl", ["POST"]),
    _route("/files/{name:path}", "files", ["GET"]),
    _route("/health", "health", ["GET"]),
]

REQUESTS = [
    ("GET", "/api/executions/42"),
    ("GET", "/api/executions/cleanup"),  # the parameter route is first: it answers
    ("POST", "/api/executions/cleanup"),  # a partial first, then a full match further down
    ("DELETE", "/api/executions/cleanup"),  # partial matches only: 405 from the first
    ("GET", "/api/executions/42/status"),
    ("GET", "/api/executions/abc/status"),
    ("DELETE", "/api/executions/42/status"),
    ("PUT", "/api/executions/42/status"),
    ("POST", "/api/events"),
    ("GET", "/api/events"),
    ("GET", "/api/events/7"),
    ("POST", "/noetl/events"),
    ("GET", "/files/a/b/c.txt"),
    ("HEAD", "/health"),
    ("GET", "/health/"),  # slash redirect
    ("GET", "/api/events/"),
    ("GET", "/nowhere"),
    ("GET", "/"),
]


async def _answers(app: Starlette) -> list[tuple[int, str, str | None]]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        answers = []
        for _ in range(2):  # the second round is answered from the memo
            for method, path in REQUESTS:
                response = await client.request(method, path, follow_redirects=False)
                answers.append((response.status_code, response.text, response.headers.get("location")))
        return answers


async def test_the_same_answers_as_the_full_walk() -> None:
    plain = Starlette(routes=TABLE)
    indexed = Starlette(routes=TABLE)
    indexed.router = IndexedRouter(TABLE)
    expected = await _answers(plain)
    assert await _answers(indexed) == expected
    assert any(status == 405 for status, _, _ in expected)
    assert any(status == 307 for status, _, _ in expected)


def _choice(routes: list[BaseRoute], method: str, path: str) -> BaseRoute | None:
    """The route Starlette dispatches to: the first full match, else the first partial one."""
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
        if match is Match.PARTIAL and partial is None:
            partial = route
    return partial


@pytest.fixture
async def gateway_routes() -> AsyncIterator[list[BaseRoute]]:
    settings = GatewaySettings.load(NOWHERE_ENV)
    clients = GatewayClients.connect(settings)
    try:
        app = create_app(clients, settings)
        assert isinstance(app.router, IndexedRouter)
        yield list(app.routes)
    finally:
        await clients.close()


async def test_the_gateway_table_narrowed_by_path_chooses_as_the_whole(
    gateway_routes: list[BaseRoute],
) -> None:
    router = IndexedRouter(gateway_routes)
    paths = set()
    for route in gateway_routes:
        assert isinstance(route, Route)
        # Every template with its parameters filled: ids, names and nested paths.
        paths.add(
            route.path.replace("{name:path}", "a/b").replace("{", "").replace("}", "").replace(":path", "")
        )
        paths.add(route.path_format.replace("{", "1").replace("}", ""))
    assert len(paths) > 100
    for path in sorted(paths):
        narrowed = router._narrowed(path)
        kept = [] if narrowed is None else narrowed.routes
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
            assert _choice(kept, method, path) is _choice(gateway_routes, method, path), (method, path)


def test_the_memo_is_bounded() -> None:
    router = IndexedRouter(TABLE)
    for index in range(MAX_PATHS + 10):
        router._narrowed(f"/api/events/{index}")
    assert len(router._by_path) <= MAX_PATHS
    assert router._narrowed("/nowhere") is None
