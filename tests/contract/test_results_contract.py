"""Golden bodies of the result store routes (http-api.md §10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.contract.golden import GoldenFiles
from tests.contract.support import expect
from tests.helpers.mesh import ProcessMesh, database

pytestmark = pytest.mark.e2e

# No execution needs to exist: the store keeps values for any execution id.
EXECUTION_ID = "612400000000000001"
# Non-ASCII on purpose (§1.2), and a key the display filter would match: a stored value is user
# data and reads back unchanged (data-model.md §9.10).
DATA = {"rows": [{"id": 1, "name": "Grüße"}], "count": 1, "password_policy": "min 12 chars"}


async def put(gateway: httpx.AsyncClient, body: Any, execution_id: str = EXECUTION_ID) -> httpx.Response:
    return await gateway.put(f"/api/result/{execution_id}", json=body)


async def test_put_and_resolve(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    stored = await put(gateway, {"name": "fetch", "data": DATA})
    golden.check("result_put", expect(stored, 200))
    ref = stored.json()["ref"]

    resolved = await gateway.get("/api/result/resolve", params={"ref": ref})
    golden.check("result_resolve", expect(resolved, 200))
    assert resolved.json() == DATA
    # Also under the gateway prefix (§1.1).
    again = await gateway.get(f"/noetl/result/resolve?ref={quote(ref, safe='')}")
    assert expect(again, 200) == resolved.content


async def test_put_with_every_option(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    body = {
        "name": "page",
        "data": [1, "two", None],
        "scope": "step",
        "store": "s3",
        "ttl": "1h",
        "source_step": "fetch",
        "correlation": {"page": 2, "api_token": "t-1"},
        "extracted": {"count": 3},
        "compress": True,
    }
    before = datetime.now(UTC)
    stored = await put(gateway, body)
    golden.check("result_put_options", expect(stored, 200))
    expires_at = datetime.fromisoformat(stored.json()["expires_at"])
    assert before + timedelta(minutes=59) < expires_at < before + timedelta(minutes=61)
    resolved = await gateway.get("/api/result/resolve", params={"ref": stored.json()["ref"]})
    assert resolved.json() == [1, "two", None]


async def test_a_numeric_ttl_counts_seconds(gateway: httpx.AsyncClient) -> None:
    before = datetime.now(UTC)
    stored = await put(gateway, {"name": "n", "data": 1, "ttl": 90})
    expect(stored, 200)
    expires_at = datetime.fromisoformat(stored.json()["expires_at"])
    assert before + timedelta(seconds=85) < expires_at < before + timedelta(seconds=95)


@pytest.mark.parametrize(
    ("name", "body", "status"),
    [
        ("result_put_invalid_scope", {"name": "x", "data": 1, "scope": "global"}, 400),
        ("result_put_invalid_store", {"name": "x", "data": 1, "store": "ftp"}, 400),
        ("result_put_invalid_ttl", {"name": "x", "data": 1, "ttl": "soon"}, 400),
        ("result_put_missing_fields", {"scope": "step"}, 422),
        ("result_put_wrong_types", {"name": 5, "data": 1, "ttl": True, "correlation": "x"}, 422),
    ],
)
async def test_put_errors(
    gateway: httpx.AsyncClient, golden: GoldenFiles, name: str, body: dict[str, Any], status: int
) -> None:
    golden.check(name, expect(await put(gateway, body), status))


async def test_put_on_a_non_numeric_execution_id(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    response = await put(gateway, {"name": "x", "data": 1}, execution_id="abc")
    golden.check("result_put_non_numeric_id", expect(response, 422))


async def test_resolve_errors(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    golden.check("result_resolve_missing_ref", expect(await gateway.get("/api/result/resolve"), 422))
    malformed = await gateway.get("/api/result/resolve", params={"ref": "s3://bucket/key"})
    golden.check("result_resolve_malformed_ref", expect(malformed, 400))
    unknown = f"noetl://execution/{EXECUTION_ID}/result/fetch/612400000000000999"
    missing = await gateway.get("/api/result/resolve", params={"ref": unknown})
    golden.check("result_resolve_not_found", expect(missing, 404))


async def test_resolve_of_an_expired_value(
    gateway: httpx.AsyncClient, golden: GoldenFiles, process_mesh: ProcessMesh
) -> None:
    stored = await put(gateway, {"name": "brief", "data": {"a": 1}, "ttl": "1h"})
    expect(stored, 200)
    ref = stored.json()["ref"]
    async with database(process_mesh.pg_dsn) as conn:
        await conn.execute(
            "UPDATE noetl.result_store SET expires_at = now() - interval '1 second' WHERE result_id = $1",
            int(ref.rpartition("/")[2]),
        )
    expired = await gateway.get("/api/result/resolve", params={"ref": ref})
    golden.check("result_resolve_expired", expect(expired, 404))
