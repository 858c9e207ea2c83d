"""The OpenAPI document (`GET /openapi.json`, `docs/openapi.json`) against the app that serves it.

The app is built in this process with its channels pointing where nothing listens: the document
and the route table need no backend. The check that matters most runs both ways: every route the
app serves under `/api` or the root is documented, and every documented operation is served.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.routing import Route

from gateway_http import openapi
from gateway_http.app import create_app
from gateway_http.clients import GatewayClients
from gateway_http.console import PREFIX as CONSOLE
from gateway_http.encoding import dumps
from gateway_http.settings import GatewaySettings
from tests.helpers.nowhere import NOWHERE_ENV

HTTP_METHODS = ("get", "put", "post", "delete", "patch")
# Served only under /api (http-api.md §1.1); every other /api route has a /noetl twin.
API_ONLY = frozenset({"/api/runtime/contract"})


@pytest.fixture
async def app() -> AsyncIterator[Starlette]:
    settings = GatewaySettings.load(NOWHERE_ENV)
    clients = GatewayClients.connect(settings)
    try:
        yield create_app(clients, settings)
    finally:
        await clients.close()


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
        yield client


def template(path: str) -> str:
    """A path with its parameter names (and Starlette convertors) blanked: `/a/{}/b`.

    Names are the documentation's business; which routes exist is what must agree.
    """
    return re.sub(r"\{[^}]*\}", "{}", path)


def served(app: Starlette) -> set[tuple[str, str]]:
    """(METHOD, template) of every route under /api or the root; HEAD is GET's automatic twin.

    The web console (`/ui`, its page and private helpers) is left out on purpose: it is not API.
    """
    return {
        (method, template(route.path))
        for route in app.routes
        if isinstance(route, Route)
        and not route.path.startswith("/noetl/")
        and not (route.path == CONSOLE or route.path.startswith(CONSOLE + "/"))
        for method in (route.methods or set()) - {"HEAD"}
    }


def documented() -> set[tuple[str, str]]:
    return {
        (method.upper(), template(path))
        for path, item in openapi.document()["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def listing(pairs: set[tuple[str, str]]) -> str:
    return "\n".join(f"  {method} {path}" for path, method in sorted((p, m) for m, p in pairs))


def test_the_document_is_valid_openapi_3_1() -> None:
    document = openapi.document()
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_operation_ids_are_unique() -> None:
    ids = [
        operation["operationId"]
        for item in openapi.document()["paths"].values()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_the_description_names_the_noetl_prefix() -> None:
    description = openapi.document()["info"]["description"]
    assert "Every `/api/x` route is also served as `/noetl/x`" in description


def test_every_served_route_is_documented(app: Starlette) -> None:
    missing = served(app) - documented()
    assert not missing, "served but not in gateway_http/openapi.py:\n" + listing(missing)


def test_every_documented_operation_is_served(app: Starlette) -> None:
    missing = documented() - served(app)
    assert not missing, "documented but not served by the gateway:\n" + listing(missing)


def test_every_api_route_has_its_noetl_twin(app: Starlette) -> None:
    routes = {
        (method, template(route.path))
        for route in app.routes
        if isinstance(route, Route)
        for method in (route.methods or set()) - {"HEAD"}
    }
    expected = {
        (method, "/noetl" + path.removeprefix("/api"))
        for method, path in routes
        if path.startswith("/api/") and path not in API_ONLY
    }
    assert not expected - routes, "no /noetl twin:\n" + listing(expected - routes)
    assert ("GET", "/noetl/runtime/contract") not in routes


async def test_the_route_serves_the_document(http: httpx.AsyncClient) -> None:
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    # Compact, with the gateway's one encoder, like every other answer (http-api.md §1.2).
    assert response.content == dumps(openapi.document())


async def test_docs_openapi_json_is_what_the_route_serves(http: httpx.AsyncClient) -> None:
    served_document = (await http.get("/openapi.json")).json()
    text = openapi.DOCS_FILE.read_text(encoding="utf-8")
    assert json.loads(text) == served_document, (
        "docs/openapi.json is out of date: run `.venv/bin/python -m gateway_http.openapi`"
    )
    assert text == openapi.render(), "docs/openapi.json is not as the writer formats it"


async def test_the_console_is_served_but_not_documented(app: Starlette, http: httpx.AsyncClient) -> None:
    console = {
        route.path for route in app.routes if isinstance(route, Route) and route.path.startswith(CONSOLE)
    }
    assert CONSOLE in console
    assert not any(path.startswith(CONSOLE) for path in openapi.document()["paths"])
    page = await http.get(CONSOLE)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")


async def test_the_document_is_only_at_the_root(http: httpx.AsyncClient) -> None:
    for path in ("/api/openapi.json", "/noetl/openapi.json"):
        assert (await http.get(path)).status_code == 404, path


def test_internal_operations_declare_the_token_gate() -> None:
    document = openapi.document()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            gated = path.startswith("/api/internal/") or path in (
                "/api/catalog/delete",
                "/api/catalog/restore",
            )
            assert ("security" in operation) == gated, (method, path)
            if gated:
                assert {"403", "503"} <= set(operation["responses"]), (method, path)
