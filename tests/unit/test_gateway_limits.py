"""Hostile bodies through the assembled gateway, without services: each answers a 4xx naming what
is wrong before any service is called (README, Configuration; docs/decisions.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gateway_http.settings import GatewaySettings
from kernel.jsonutil import MAX_NESTING_DEPTH
from tests.helpers.gateway import in_process_gateway
from tests.helpers.nowhere import NOWHERE_ENV

LIMIT = 64 * 1024


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    config = GatewaySettings.load({**NOWHERE_ENV, "NOETL_GATEWAY_MAX_BODY_BYTES": str(LIMIT)})
    async with in_process_gateway(config) as client:
        yield client


async def test_nesting_past_the_limit_is_422_at_any_depth(http: httpx.AsyncClient) -> None:
    just_over = b'{"variables": {"x": ' + b"[" * MAX_NESTING_DEPTH + b"]" * MAX_NESTING_DEPTH + b"}}"
    very_deep = b"[" * 10_000 + b"]" * 10_000
    for body in (just_over, very_deep):
        response = await http.post("/api/vars/1", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 422, response.text
        assert f"JSON nested deeper than {MAX_NESTING_DEPTH} levels" in response.text
    # At the limit it parses and reaches the (absent) service.
    at_limit = (
        b'{"variables": {"x": ' + b"[" * (MAX_NESTING_DEPTH - 2) + b"]" * (MAX_NESTING_DEPTH - 2) + b"}}"
    )
    assert (await http.post("/api/vars/1", content=at_limit)).status_code == 503


async def test_a_lone_surrogate_is_422_naming_where_it_is(http: httpx.AsyncClient) -> None:
    body = b'{"variables": {"ok": "\\ud83d\\ude00", "bad": ["\\ud800"], "\\udfff": 1}}'
    response = await http.post("/api/vars/1", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert [(item["type"], item["loc"], item["input"]) for item in response.json()["detail"]] == [
        ("string_unicode", ["body", "variables", "bad", 0], "\\ud800"),
        ("string_unicode", ["body", "variables", "\\udfff"], "\\udfff"),
    ]


async def test_invalid_utf8_is_400_naming_the_byte(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/vars/1", content=b'{"variables": {"x": "\xff"}}')
    assert response.status_code == 400
    assert response.json() == {
        "detail": "There was an error parsing the body: not valid UTF-8 (byte 0xff at position 21: invalid start byte)"
    }


async def test_a_body_over_the_route_limit_is_413_stating_the_limit(http: httpx.AsyncClient) -> None:
    big = b'{"variables": {"x": "' + b"a" * LIMIT + b'"}}'
    declared = await http.post("/api/vars/1", content=big)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    streamed = await http.post("/noetl/vars/1", content=chunks())
    for response, path in ((declared, "/api/vars/1"), (streamed, "/noetl/vars/1")):
        assert response.status_code == 413
        assert response.json() == {
            "detail": f"Request body too large: POST {path} accepts at most {LIMIT} bytes (NOETL_GATEWAY_MAX_BODY_BYTES)"
        }
    # Routes with their own limits take more: this body reaches the (absent) catalog.
    register = await http.post("/api/catalog/register", json={"content": "a" * LIMIT})
    assert register.status_code == 503
