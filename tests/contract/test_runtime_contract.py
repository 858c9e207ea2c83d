"""`GET /api/runtime/shard-info` and `GET /api/runtime/contract` (http-api.md §7.5, §7.6).

Golden bodies come from the session gateway; the settings that change the answers (the replica
numbering, the Auth0 block, a route switched off) are tried on apps built in this process, which
need no backend for these routes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from gateway_http.app import create_app
from gateway_http.clients import GatewayClients
from gateway_http.settings import GatewaySettings
from kernel.config import ConfigError
from tests.contract.golden import GoldenFiles
from tests.contract.support import expect
from tests.helpers.nowhere import NOWHERE_ENV

pytestmark = pytest.mark.e2e

SHARD_INFO = "/api/runtime/shard-info"
CONTRACT = "/api/runtime/contract"

# data-model.md §10.1, the normative vectors.
VECTORS = [
    (320816801799737344, 16, 14),
    (1, 1024, 405),
    (1, 2, 1),
    (1, 4, 1),
    (1, 16, 5),
    (1, 64, 21),
    (42, 4, 3),
    (325, 4, 0),
    (325, 8, 4),
    (9223372036854775807, 4, 0),
]


@asynccontextmanager
async def local_gateway(**env: str) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    settings = GatewaySettings.load(
        {
            **NOWHERE_ENV,
            **env,
        }
    )
    clients = GatewayClients.connect(settings)
    app = create_app(clients, settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as http:
            yield app, http
    finally:
        await clients.close()


def served_entries(app: Starlette) -> list[str]:
    """`"METHOD /path"` of every route outside /noetl, read straight from the route table."""
    return sorted(
        f"{method} {route.path_format}"
        for route in app.routes
        if isinstance(route, Route) and not route.path.startswith("/noetl/")
        for method in (route.methods or set()) - {"HEAD"}
    )


async def contract_of(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get(CONTRACT)
    expect(response, 200)
    body: dict[str, Any] = response.json()
    return body


# --------------------------------------------------------------------------------------------------
# shard-info


async def test_shard_info(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    response = await gateway.get(
        SHARD_INFO, params={"execution_id": "320816801799737344", "shard_count": "16"}
    )
    golden.check("runtime_shard_info", expect(response, 200))
    assert response.json()["execution_id"] == "320816801799737344"


@pytest.mark.parametrize(("execution_id", "count", "shard"), VECTORS)
@pytest.mark.parametrize("prefix", ["/api", "/noetl"])
async def test_shard_info_vectors(
    gateway: httpx.AsyncClient, prefix: str, execution_id: int, count: int, shard: int
) -> None:
    response = await gateway.get(
        f"{prefix}/runtime/shard-info", params={"execution_id": str(execution_id), "shard_count": str(count)}
    )
    body = response.json()
    assert response.status_code == 200, body
    assert (body["execution_id"], body["shard_count"], body["shard_index"]) == (
        str(execution_id),
        count,
        shard,
    )


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("missing_execution_id", {"shard_count": "4"}),
        ("missing_shard_count", {"execution_id": "42"}),
        ("missing_both", {}),
        ("bad_execution_id", {"execution_id": "abc", "shard_count": "4"}),
        ("execution_id_beyond_64_bits", {"execution_id": "9223372036854775808", "shard_count": "4"}),
        ("shard_count_zero", {"execution_id": "42", "shard_count": "0"}),
        ("shard_count_too_large", {"execution_id": "42", "shard_count": "1025"}),
        ("shard_count_not_a_number", {"execution_id": "42", "shard_count": "many"}),
    ],
)
async def test_shard_info_bad_parameters(
    gateway: httpx.AsyncClient, golden: GoldenFiles, name: str, params: dict[str, str]
) -> None:
    response = await gateway.get(SHARD_INFO, params=params)
    golden.check(f"runtime_shard_info_{name}", expect(response, 400))


async def test_shard_info_reports_the_deployments_numbering() -> None:
    async with local_gateway(NOETL_SHARD_COUNT="4", NOETL_SHARD_INDEX="2") as (_, http):
        response = await http.get(SHARD_INFO, params={"execution_id": "42", "shard_count": "4"})
    assert response.json()["server_config"] == {"shard_index": 2, "shard_count": 4}


def test_a_shard_index_outside_the_count_refuses_to_start() -> None:
    with pytest.raises(ConfigError, match="NOETL_SHARD_INDEX"):
        GatewaySettings.load({"NOETL_MESH_AUTH": "off", "NOETL_SHARD_COUNT": "4", "NOETL_SHARD_INDEX": "4"})


# --------------------------------------------------------------------------------------------------
# contract


async def test_contract(gateway: httpx.AsyncClient) -> None:
    body = await contract_of(gateway)
    assert list(body) == [
        "contract_version",
        "api_version",
        "server_version",
        "gateway_version",
        "summary",
        "auth",
        "routes",
        "proxy_contract",
        "cli_operation_mapping",
    ]
    assert {key: body[key] for key in ("contract_version", "api_version", "summary")} == {
        "contract_version": "1",
        "api_version": "v1",
        "summary": "NoETL control plane HTTP API",
    }
    assert body["server_version"] == body["gateway_version"] == "0.1.0"
    assert body["auth"] == {
        "mode": "none",
        "accepted_headers": ["Authorization: Bearer <session_token>", "x-session-token: <session_token>"],
    }
    assert body["proxy_contract"] == {"incoming_prefix": "/noetl/", "upstream_prefix": "/api/"}
    assert body["cli_operation_mapping"] == {
        "exec": "/noetl/execute",
        "status": "/noetl/executions/{id}/status",
        "detail": "/noetl/executions/{id}",
        "events": "/noetl/executions/{id}/events",
        "cancel": "/noetl/executions/{id}/cancel",
        "catalog_list": "/noetl/catalog/list",
        "catalog_register": "/noetl/catalog/register",
        "query": "/noetl/postgres/execute",
    }


async def test_contract_routes_are_what_the_app_serves() -> None:
    async with local_gateway() as (app, http):
        routes = (await contract_of(http))["routes"]
    listed = [entry for entries in routes.values() for entry in entries]
    assert sorted(listed) == served_entries(app)
    assert len(listed) == len(set(listed))
    assert "GET /health" in routes["health"]
    assert "POST /api/catalog/register" in routes["catalog"]
    assert "GET /api/executions/{execution_id}/events/stream" in routes["executions"]
    assert "GET /api/runtime/contract" in routes["runtime"]
    assert "GET /api/credentials/{identifier}" in routes["credentials"]
    assert "POST /api/internal/outbox/claim" in routes["internal"]
    assert list(routes)[:2] == ["health", "catalog"]


async def test_a_route_switched_off_leaves_the_contract() -> None:
    async with local_gateway(NOETL_DISABLE_METRICS="true") as (_, http):
        routes = (await contract_of(http))["routes"]
    assert "GET /metrics" not in routes["health"]
    assert "GET /health" in routes["health"]


async def test_the_contract_is_only_under_api(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/noetl/runtime/contract")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


async def test_no_auth0_block_unless_a_domain_is_set(gateway: httpx.AsyncClient) -> None:
    assert "auth0" not in await contract_of(gateway)
    for env in (
        {"GATEWAY_AUTH0_CLIENT_ID": "abc123"},
        {"GATEWAY_AUTH0_DOMAIN": "   ", "GATEWAY_AUTH0_CLIENT_ID": "x"},
    ):
        async with local_gateway(**env) as (_, http):
            assert "auth0" not in await contract_of(http), env


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {
                "GATEWAY_AUTH0_DOMAIN": " acme.auth0.com ",
                "GATEWAY_AUTH0_CLIENT_ID": "abc123\n",
                "GATEWAY_AUTH0_REDIRECT_URI": "https://app.example.com/login",
                "GATEWAY_AUTH0_AUDIENCE": "https://api.example.com",
            },
            {
                "domain": "acme.auth0.com",
                "client_id": "abc123",
                "redirect_uri": "https://app.example.com/login",
                "audience": "https://api.example.com",
            },
        ),
        (
            {"GATEWAY_AUTH0_DOMAIN": "acme.auth0.com", "GATEWAY_AUTH0_REDIRECT_URI": "  "},
            {"domain": "acme.auth0.com"},
        ),
    ],
    ids=["all_values_trimmed", "empty_values_omitted"],
)
async def test_the_auth0_block(env: Mapping[str, str], expected: dict[str, str]) -> None:
    async with local_gateway(**env) as (_, http):
        body = await contract_of(http)
    assert list(body)[-1] == "auth0"
    assert body["auth0"] == expected
    assert list(body["auth0"]) == list(expected)
