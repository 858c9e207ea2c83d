"""Golden bodies of the worker-pool routes (http-api.md §7.1-§7.4), under the default gateway
settings (no configured pool name, auto-recreate on). The session mesh's own worker registers
itself too, so listings are filtered by a runtime type only these tests use.
"""

from __future__ import annotations

import httpx
import pytest

from tests.contract.golden import GoldenFiles
from tests.contract.support import expect

pytestmark = pytest.mark.e2e

LIST_TYPE = "contract-list"


async def test_register_with_a_runtime_string(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    response = await gateway.post(
        "/api/worker/pool/register",
        json={
            "name": " contract-py-0 ",
            "runtime": "python",
            "pid": 4242,
            "hostname": "w0",
            "meta": {"zone": "a"},
            "capacity": 8,
            "labels": {"tier": "gold"},
            "uri": "http://w0:9000",
            "status": "READY",
        },
    )
    golden.check("pool_register", expect(response, 200))


async def test_register_with_a_runtime_object_and_aliases(
    gateway: httpx.AsyncClient, golden: GoldenFiles
) -> None:
    """`component_type` wins over `kind` and is forced to worker_pool anyway; `base_url` wins over `uri`."""
    response = await gateway.post(
        "/noetl/worker/pool/register",
        json={
            "name": "contract-obj",
            "component_type": "broker",
            "kind": "scheduler",
            "runtime": {"type": "rust", "worker_public_key": "pk-1", "pid": 7},
            "base_url": "http://b:1",
            "uri": "http://u:2",
        },
    )
    golden.check("pool_register_runtime_object", expect(response, 200))


async def test_register_without_name(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    response = await gateway.post("/api/worker/pool/register", json={"runtime": "python"})
    golden.check("pool_register_missing_name", expect(response, 422))


async def test_register_with_invalid_fields(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    response = await gateway.post(
        "/api/worker/pool/register",
        json={"name": "  ", "runtime": 5, "capacity": -1, "labels": "gold", "pid": "x"},
    )
    golden.check("pool_register_invalid_fields", expect(response, 422))


async def test_heartbeat_of_a_registered_pool(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    expect(await gateway.post("/api/worker/pool/register", json={"name": "contract-beat"}), 200)
    response = await gateway.post("/api/worker/pool/heartbeat", json={"name": "contract-beat"})
    golden.check("pool_heartbeat", expect(response, 200))


async def test_heartbeat_of_an_unknown_pool(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    response = await gateway.post("/api/worker/pool/heartbeat", json={"name": "contract-ghost"})
    golden.check("pool_heartbeat_unknown", expect(response, 404))
    assert response.headers["retry-after"] == "5"


async def test_heartbeat_recreates_an_unknown_pool_from_its_registration(
    gateway: httpx.AsyncClient, golden: GoldenFiles
) -> None:
    registration = {"name": "contract-lost", "runtime": "python", "capacity": 2}
    response = await gateway.post(
        "/api/worker/pool/heartbeat", json={"name": "contract-lost", "registration": registration}
    )
    golden.check("pool_heartbeat_recreated", expect(response, 200))
    again = await gateway.post(
        "/api/worker/pool/heartbeat", json={"name": "contract-lost", "registration": registration}
    )
    assert expect(again, 200)
    assert again.json()["status"] == "ok"
    assert again.json()["runtime_id"] == response.json()["runtime_id"]


async def test_heartbeat_without_name(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    golden.check("pool_heartbeat_no_name", expect(await gateway.post("/api/worker/pool/heartbeat"), 200))


async def test_heartbeat_with_an_invalid_registration(
    gateway: httpx.AsyncClient, golden: GoldenFiles
) -> None:
    response = await gateway.post(
        "/api/worker/pool/heartbeat", json={"name": 3, "registration": {"capacity": "many"}}
    )
    golden.check("pool_heartbeat_invalid", expect(response, 422))


async def test_deregister_by_post_and_by_delete(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    expect(await gateway.post("/api/worker/pool/register", json={"name": "contract-leaving"}), 200)
    response = await gateway.post("/api/worker/pool/deregister", json={"name": "contract-leaving"})
    golden.check("pool_deregister", expect(response, 200))
    deleted = await gateway.request(
        "DELETE", "/api/worker/pool/deregister", json={"name": "contract-leaving"}
    )
    golden.check("pool_deregister", expect(deleted, 200))


async def test_deregister_of_an_unknown_pool(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    response = await gateway.request(
        "DELETE",
        "/api/worker/pool/deregister",
        json={"name": "contract-never", "component_type": "scheduler"},
    )
    golden.check("pool_deregister_unknown", expect(response, 200))


async def test_deregister_with_an_unknown_kind(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    response = await gateway.post(
        "/api/worker/pool/deregister", json={"name": "contract-x", "kind": "cluster"}
    )
    golden.check("pool_deregister_bad_kind", expect(response, 422))


async def test_deregister_without_name(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    response = await gateway.request("DELETE", "/api/worker/pool/deregister", json={})
    golden.check("pool_deregister_missing_name", expect(response, 422))


async def test_list_pools(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    for name, capacity in (("contract-list-b", 2), ("contract-list-a", 1), ("contract-list-c", None)):
        expect(
            await gateway.post(
                "/api/worker/pool/register",
                json={
                    "name": name,
                    "runtime": LIST_TYPE,
                    "pid": 4242,
                    "hostname": "w0",
                    "meta": {"zone": "a"},
                    "capacity": capacity,
                    "labels": {"pools": ["shared"]} if capacity else None,
                },
            ),
            200,
        )
    expect(await gateway.post("/api/worker/pool/deregister", json={"name": "contract-list-c"}), 200)

    everything = await gateway.get("/api/worker/pools", params={"runtime": LIST_TYPE})
    golden.check("pools_list", expect(everything, 200))
    offline = await gateway.get("/noetl/worker/pools", params={"runtime": LIST_TYPE, "status": "offline"})
    golden.check("pools_list_offline", expect(offline, 200))
    nothing = await gateway.get("/api/worker/pools", params={"runtime": "contract-none"})
    golden.check("pools_list_no_match", expect(nothing, 200))
