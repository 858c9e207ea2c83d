"""The assembled app without services: routing, prefixes, CORS, metrics, validation before any call.

The channels point at a port nothing listens on, so any request that reached a service
would answer 503; every assertion here holds before that point (or is that 503).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from gateway_http.middleware import RequestTimeout
from gateway_http.settings import GatewaySettings
from tests.helpers.gateway import in_process_gateway
from tests.helpers.nowhere import NOWHERE_ENV


def settings(**env: str) -> GatewaySettings:
    return GatewaySettings.load(
        {
            **NOWHERE_ENV,
            **env,
        }
    )


async def client_for(config: GatewaySettings) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_gateway(config) as http:
        yield http


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(settings()):
        yield client


@pytest.mark.parametrize("path", ["/health", "/api/health", "/noetl/health"])
async def test_health_needs_no_backend(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path)
    assert response.status_code == 200
    assert response.content == b'{"status":"ok"}'
    assert response.headers["content-type"] == "application/json"


async def test_unknown_routes_and_methods_are_json(http: httpx.AsyncClient) -> None:
    missing = await http.get("/api/run/playbook")
    assert (missing.status_code, missing.content) == (404, b'{"detail":"Not Found"}')
    wrong = await http.delete("/api/catalog/list")
    assert (wrong.status_code, wrong.content) == (405, b'{"detail":"Method Not Allowed"}')


async def test_validation_answers_before_any_service_call(http: httpx.AsyncClient) -> None:
    response = await http.post("/noetl/execute", json={"workload": {}})
    assert response.status_code == 422
    assert (
        response.json()["detail"][0]["msg"] == "Value error, Either 'path' or 'catalog_id' must be provided"
    )


async def test_a_nul_character_is_refused_naming_where_it_is(http: httpx.AsyncClient) -> None:
    """Postgres cannot store U+0000: refused before any service call, in a body at any depth,
    in a path parameter and in a query value the route reads."""
    body = await http.post("/api/vars/1", json={"variables": {"ok": "x", "bad": ["a\u0000b"]}})
    path = await http.get("/api/credentials/db%00prod")
    query = await http.get("/api/credentials", params={"q": "a\x00"})
    found = [(r.status_code, [item["loc"] for item in r.json()["detail"]]) for r in (body, path, query)]
    assert found == [
        (422, [["body", "variables", "bad", 0]]),
        (422, [["path", "identifier"]]),
        (422, [["query", "q"]]),
    ]
    assert body.json()["detail"][0]["msg"] == "String should not contain the NUL character (\\u0000)"
    # The same text without the NUL passes validation and reaches the (absent) service: 503.
    assert (await http.get("/api/credentials/db-prod")).status_code == 503


async def test_a_non_numeric_status_id_is_404(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/executions/abc/status")
    assert (response.status_code, response.content) == (404, b'{"detail":"Execution not found"}')


async def test_an_unreachable_service_is_503_with_retry_after(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/catalog/list", json={})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert isinstance(response.json()["detail"], str)


async def test_simple_responses_allow_any_origin_and_echo_it_only_with_cookies(
    http: httpx.AsyncClient,
) -> None:
    plain = await http.get("/api/health", headers={"Origin": "http://ui.example"})
    assert plain.headers["access-control-allow-origin"] == "*"
    assert plain.headers["access-control-allow-credentials"] == "true"
    assert "vary" not in plain.headers
    with_cookie = await http.get("/api/health", headers={"Origin": "http://ui.example", "Cookie": "s=1"})
    assert with_cookie.headers["access-control-allow-origin"] == "http://ui.example"
    assert with_cookie.headers["vary"] == "Origin"
    no_origin = await http.get("/api/health")
    assert "access-control-allow-origin" not in no_origin.headers


async def test_preflight_echoes_origin_and_headers(http: httpx.AsyncClient) -> None:
    response = await http.options(
        "/api/execute",
        headers={
            "Origin": "http://ui.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-session-token",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://ui.example"
    assert response.headers["access-control-allow-methods"] == "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
    assert response.headers["access-control-allow-headers"] == "content-type, x-session-token"
    assert response.headers["access-control-max-age"] == "600"
    assert response.headers["access-control-allow-credentials"] == "true"


async def test_metrics_count_requests_by_route_template(http: httpx.AsyncClient) -> None:
    await http.get("/api/commands/not-a-number")
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    lines = response.text.splitlines()
    assert 'noetl_request_total{method="GET",route="/api/commands/{event_id}",status="422"} 1.0' in lines
    assert any(line.startswith("noetl_server_build_info{") for line in lines)
    assert not any("not-a-number" in line for line in lines)


async def test_metrics_can_be_disabled() -> None:
    async for http in client_for(settings(NOETL_DISABLE_METRICS="true")):
        assert (await http.get("/metrics")).status_code == 404


async def test_a_request_past_its_deadline_is_504() -> None:
    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(5)

    transport = httpx.ASGITransport(app=RequestTimeout(slow, seconds=0.01))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        response = await http.get("/anything")
    assert response.status_code == 504
    assert response.content == b'{"detail":"Request processing time exceeded the maximum timeout"}'


def test_the_shard_count_defaults_to_the_execution_shards_routed_to() -> None:
    three = settings(NOETL_EXECUTION_ADDRS="127.0.0.1:1,127.0.0.1:2,127.0.0.1:3")
    assert (three.shard_index, three.shard_count) == (0, 3)
    pinned = settings(NOETL_EXECUTION_ADDRS="127.0.0.1:1,127.0.0.1:2", NOETL_SHARD_COUNT="16")
    assert pinned.shard_count == 16
