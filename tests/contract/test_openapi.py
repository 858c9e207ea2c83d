"""The OpenAPI document (`GET /openapi.json`, `docs/openapi.json`) against the app that serves it.

The app is built in this process with its channels pointing where nothing listens: the document
and the route table need no backend. The document is assembled from the app's endpoints, so the
check that matters most runs both ways on what the app really does: every route it serves under
`/api` or the root is documented (under its `/api` path), and every documented operation is served.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.routing import Route

from gateway_http.app import api_endpoints, create_app
from gateway_http.clients import GatewayClients
from gateway_http.console import PREFIX as CONSOLE
from gateway_http.encoding import dumps
from gateway_http.openapi.__main__ import default_document
from gateway_http.openapi.build import Schema
from gateway_http.openapi.document import DOCS_FILE, document, render
from gateway_http.settings import GatewaySettings
from kernel.mesh_auth import token_digest
from tests.helpers.nowhere import NOWHERE_ENV

HTTP_METHODS = ("get", "put", "post", "delete", "patch")
# What HTTP auth never guards (gateway_http/http_auth.py): these stay open with it on; the
# internal routes keep their own gate instead.
OPEN = frozenset(
    {
        ("GET", "/health"),
        ("GET", "/api/health"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/api/runtime/contract"),
        ("GET", "/api/runtime/shard-info"),
    }
)
INTERNAL_CATALOG = ("/api/catalog/delete", "/api/catalog/restore")
READ_TOKEN = "openapi-read-token"
# Served only under /api (http-api.md §1.1); every other /api route has a /noetl twin.
API_ONLY = frozenset({"/api/runtime/contract"})


@pytest.fixture
async def app() -> AsyncIterator[Starlette]:
    async with app_of(NOWHERE_ENV) as built:
        yield built


@contextlib.asynccontextmanager
async def app_of(env: Mapping[str, str]) -> AsyncIterator[Starlette]:
    settings = GatewaySettings.load(env)
    clients = GatewayClients.connect(settings)
    try:
        yield create_app(clients, settings)
    finally:
        await clients.close()


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(app) as client:
        yield client


def client_of(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")


@pytest.fixture
async def served_document(http: httpx.AsyncClient) -> Schema:
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    parsed: Schema = response.json()
    return parsed


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


def documented(document: Schema) -> set[tuple[str, str]]:
    return {
        (method.upper(), template(path))
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def operations(document: Schema) -> list[tuple[str, str, Schema]]:
    """(path, method, operation) of every operation of the document."""
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def listing(pairs: set[tuple[str, str]]) -> str:
    return "\n".join(f"  {method} {path}" for path, method in sorted((p, m) for m, p in pairs))


def test_the_document_is_valid_openapi_3_1(served_document: Schema) -> None:
    assert served_document["openapi"] == "3.1.0"
    validate(served_document)


def test_operation_ids_are_unique(served_document: Schema) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(served_document)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_the_description_names_the_noetl_prefix(served_document: Schema) -> None:
    description = served_document["info"]["description"]
    assert "Every `/api/x` route is also served as `/noetl/x`" in description


def test_every_served_route_is_documented(app: Starlette, served_document: Schema) -> None:
    missing = served(app) - documented(served_document)
    assert not missing, "served but not documented:\n" + listing(missing)


def test_every_documented_operation_is_served(app: Starlette, served_document: Schema) -> None:
    missing = documented(served_document) - served(app)
    assert not missing, "documented but not served by the gateway:\n" + listing(missing)


async def test_a_route_the_app_does_not_serve_is_not_documented() -> None:
    async with app_of({**NOWHERE_ENV, "NOETL_DISABLE_METRICS": "true"}) as app, client_of(app) as http:
        paths = (await http.get("/openapi.json")).json()["paths"]
    assert "/metrics" not in paths
    assert "/health" in paths


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


async def test_the_route_serves_the_document_of_the_apps_endpoints(http: httpx.AsyncClient) -> None:
    settings = GatewaySettings.load(NOWHERE_ENV)
    clients = GatewayClients.connect(settings)
    try:
        expected = document(api_endpoints(clients, settings))
    finally:
        await clients.close()
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    # Compact, with the gateway's one encoder, like every other answer (http-api.md §1.2).
    assert response.content == dumps(expected)


async def test_docs_openapi_json_is_what_the_route_serves(served_document: Schema) -> None:
    text = DOCS_FILE.read_text(encoding="utf-8")
    assert json.loads(text) == served_document, (
        "docs/openapi.json is out of date: run `.venv/bin/python -m gateway_http.openapi`"
    )
    assert text == render(served_document), "docs/openapi.json is not as the writer formats it"
    assert text == render(await default_document()), "the writer does not write what the route serves"


async def test_the_console_is_served_but_not_documented(app: Starlette, http: httpx.AsyncClient) -> None:
    console = {
        route.path for route in app.routes if isinstance(route, Route) and route.path.startswith(CONSOLE)
    }
    assert CONSOLE in console
    served_document = (await http.get("/openapi.json")).json()
    assert not any(path.startswith(CONSOLE) for path in served_document["paths"])
    page = await http.get(CONSOLE)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")


async def test_the_document_is_only_at_the_root(http: httpx.AsyncClient) -> None:
    for path in ("/api/openapi.json", "/noetl/openapi.json"):
        assert (await http.get(path)).status_code == 404, path


def test_internal_operations_declare_the_token_gate(served_document: Schema) -> None:
    for path, method, operation in operations(served_document):
        gated = is_internal(path)
        assert (operation.get("security") == [{"internalToken": []}]) == gated, (method, path)
        if gated:
            assert {"403", "503"} <= set(operation["responses"]), (method, path)
            assert operation["responses"]["403"] == {"$ref": "#/components/responses/Forbidden"}


def is_internal(path: str) -> bool:
    return path.startswith("/api/internal/") or path in INTERNAL_CATALOG


def test_http_auth_is_optional_for_the_whole_document(served_document: Schema) -> None:
    assert served_document["security"] == [{"bearerAuth": []}, {"sessionToken": []}, {}]
    schemes = served_document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["sessionToken"]["name"] == "x-session-token"


def test_every_operation_http_auth_guards_lists_401_and_403(served_document: Schema) -> None:
    unauthenticated = {"$ref": "#/components/responses/Unauthenticated"}
    insufficient = {"$ref": "#/components/responses/InsufficientScope"}
    open_security: dict[tuple[str, str], Any] = {}
    for path, method, operation in operations(served_document):
        responses = operation["responses"]
        if is_internal(path) or (method.upper(), path) in OPEN:
            assert "401" not in responses, (method, path)
            assert responses.get("403") != insufficient, (method, path)
            if not is_internal(path):
                open_security[(method.upper(), path)] = operation.get("security")
        else:
            assert (responses.get("401"), responses.get("403")) == (unauthenticated, insufficient), (
                method,
                path,
            )
            assert "security" not in operation, (method, path)  # the global one, anonymous included
    # Each exemption is a documented operation, saying it needs nothing even with HTTP auth on.
    assert open_security == {operation: [] for operation in OPEN}


@pytest.fixture
async def auth_http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app with HTTP auth on and one static API token of the `read` level."""
    tokens = tmp_path / "api-tokens"
    tokens.write_text(f"reader read {token_digest(READ_TOKEN)}\n")
    env = {**NOWHERE_ENV, "NOETL_HTTP_AUTH": "bearer", "NOETL_HTTP_API_TOKENS_FILE": str(tokens)}
    async with app_of(env) as app, client_of(app) as http:
        yield http


async def test_http_auth_refuses_exactly_the_operations_that_list_401(auth_http: httpx.AsyncClient) -> None:
    """Every documented operation, with HTTP auth on and no token: 401 where the document says so."""
    document = (await auth_http.get("/openapi.json")).json()
    refused = {
        (method.upper(), path)
        for path, method, _ in operations(document)
        if (await auth_http.request(method, re.sub(r"\{[^}]*\}", "1", path))).status_code == 401
    }
    listed = {
        (method.upper(), path)
        for path, method, operation in operations(document)
        if "401" in operation["responses"]
    }
    assert refused == listed, listing(refused ^ listed)


async def test_http_auth_answers_the_documented_bodies(auth_http: httpx.AsyncClient) -> None:
    document = (await auth_http.get("/openapi.json")).json()
    responses = document["components"]["responses"]
    unauthenticated = responses["Unauthenticated"]
    examples = unauthenticated["content"]["application/json"]["examples"]
    levels = document["components"]["schemas"]["InsufficientScope"]["properties"]["detail"]["enum"]

    missing = await auth_http.get("/api/executions")
    assert (missing.status_code, missing.json()) == (401, examples["missing"]["value"])
    challenge = unauthenticated["headers"]["WWW-Authenticate"]["schema"]["const"]
    assert missing.headers["www-authenticate"] == challenge
    unknown = await auth_http.get("/api/executions", headers={"authorization": "Bearer not-a-known-token"})
    assert (unknown.status_code, unknown.json()) == (401, examples["invalid"]["value"])

    read = {"authorization": f"Bearer {READ_TOKEN}"}
    write = await auth_http.post("/api/execute", json={"path": "x"}, headers=read)
    assert (write.status_code, write.json()) == (403, {"detail": "This call needs the write scope"})
    assert write.json()["detail"] in levels
    admin = await auth_http.post("/api/postgres/execute", json={"query": "select 1"}, headers=read)
    example = responses["InsufficientScope"]["content"]["application/json"]["examples"]["admin"]["value"]
    assert (admin.status_code, admin.json()) == (403, example)
