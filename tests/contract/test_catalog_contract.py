"""Golden bodies of the catalog routes (http-api.md §3, §13.1) and of `ui_schema` (docs/decisions.md).

Delete and restore sit behind the internal token gate (§1.8). The session mesh's gateway has no
token configured, so those routes are called through a gateway app built in this process, with
or without a token, in front of the session mesh's services.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from gateway_http.settings import GatewaySettings
from tests.contract.golden import GoldenFiles
from tests.contract.support import LINEAR_PATH, expect
from tests.helpers.gateway import in_process_gateway
from tests.helpers.invariants import FinishedRun
from tests.helpers.mesh import ProcessMesh, register, wait_terminal
from tests.helpers.nowhere import NOWHERE_ENV

pytestmark = pytest.mark.e2e

PROBE = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: register_probe
  path: contract/register_probe
workflow:
  - step: start
    tool:
      kind: python
      code: |
        result = {}
"""


async def test_register_base64_content(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    """As the CLI sends it (cli-wire.md §4.1): base64 of the file, `resource_type` Playbook."""
    content = base64.b64encode(PROBE.encode()).decode()
    response = await gateway.post(
        "/api/catalog/register", json={"content": content, "resource_type": "Playbook"}
    )
    golden.check("catalog_register", expect(response, 200))


async def test_register_invalid_yaml(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    """400, a documented gateway choice; http-api.md §3.1 has the reference's 500 with the same detail form."""
    response = await gateway.post("/api/catalog/register", json={"content": "key: [unclosed"})
    golden.check("catalog_register_invalid_yaml", expect(response, 400))


async def test_register_missing_content(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    response = await gateway.post("/api/catalog/register", json={"resource_type": "Playbook"})
    golden.check("catalog_register_missing_content", expect(response, 422))


async def test_register_body_not_json(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    response = await gateway.post(
        "/api/catalog/register", content=b"content: x", headers={"content-type": "application/json"}
    )
    golden.check("catalog_register_body_not_json", expect(response, 422))


async def test_list_by_path(gateway: httpx.AsyncClient, golden: GoldenFiles, linear_run: FinishedRun) -> None:
    response = await gateway.post("/api/catalog/list", json={"path": LINEAR_PATH})
    golden.check("catalog_list_by_path", expect(response, 200))


async def test_list_by_resource_type_is_case_insensitive(
    gateway: httpx.AsyncClient, linear_run: FinishedRun
) -> None:
    """cli-wire.md §4.3: the CLI sends `Playbook` as typed."""
    listed = expect(await gateway.post("/api/catalog/list", json={"resource_type": "Playbook"}), 200)
    lower = expect(await gateway.post("/api/catalog/list", json={"resource_type": "playbook"}), 200)
    assert listed == lower
    assert LINEAR_PATH.encode() in listed


async def test_list_without_match(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    response = await gateway.post("/api/catalog/list", json={"path": "contract/nothing_here"})
    golden.check("catalog_list_no_match", expect(response, 200))


async def test_resource_by_path_and_by_catalog_id(
    gateway: httpx.AsyncClient, golden: GoldenFiles, linear_run: FinishedRun
) -> None:
    by_path = expect(await gateway.post("/api/catalog/resource", json={"path": LINEAR_PATH}), 200)
    golden.check("catalog_resource", by_path)

    catalog_id = linear_run.detail["catalog_id"]
    by_string_id = await gateway.post("/api/catalog/resource", json={"catalog_id": catalog_id})
    by_number_id = await gateway.post("/api/catalog/resource", json={"catalog_id": int(catalog_id)})
    latest = await gateway.post("/api/catalog/resource", json={"path": LINEAR_PATH, "version": "latest"})
    assert expect(by_string_id, 200) == by_path
    assert expect(by_number_id, 200) == by_path
    assert expect(latest, 200) == by_path


async def test_resource_not_found(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    response = await gateway.post("/api/catalog/resource", json={"path": "contract/nothing_here"})
    golden.check("catalog_resource_not_found", expect(response, 404))


async def test_resource_without_identifier(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    response = await gateway.post("/api/catalog/resource", json={"version": 1})
    golden.check("catalog_resource_no_identifier", expect(response, 422))


def b64(text: str) -> str:
    """What the CLI sends: standard base64 with padding of the file bytes (cli-wire.md §4.1)."""
    return base64.b64encode(text.encode()).decode()


def probe(path: str) -> str:
    """A one-step playbook at `path` that completes at once."""
    return PROBE.replace("contract/register_probe", path).replace("register_probe", path.rpartition("/")[2])


async def test_register_batch(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    """Base64 and raw items side by side; the bad item fails alone with the single route's detail."""
    items = [
        {"content": b64(probe("contract/batch_one")), "resource_type": "Playbook"},
        {"content": probe("contract/batch_two")},
        {"content": "key: [unclosed", "resource_type": "Playbook"},
    ]
    response = await gateway.post("/api/catalog/register/batch", json={"items": items})
    body = expect(response, 200)
    golden.check("catalog_register_batch", body)

    single = await gateway.post("/api/catalog/register", json={"content": "key: [unclosed"})
    assert response.json()["results"][2]["error"] == single.json()["detail"]
    listed = await gateway.post("/api/catalog/list", json={"path": "contract/batch_two"})
    expect(listed, 200)
    assert [entry["version"] for entry in listed.json()["entries"]] == [1]


async def test_register_batch_without_items(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    response = await gateway.post("/api/catalog/register/batch", json={"items": []})
    golden.check("catalog_register_batch_empty", expect(response, 422))
    missing = await gateway.post("/api/catalog/register/batch", json={})
    golden.check("catalog_register_batch_missing_items", expect(missing, 422))


async def test_register_batch_over_1000_items(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    """Refused whole before any item is read (or registered): the items here are not even valid."""
    response = await gateway.post("/api/catalog/register/batch", json={"items": [{}] * 1001})
    golden.check("catalog_register_batch_too_many", expect(response, 422))
    exactly = await gateway.post("/api/catalog/register/batch", json={"items": [{}] * 1000})
    assert expect(exactly, 422).count(b'"type":"missing"') == 1000


async def test_register_batch_item_without_content(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    items = [{"content": probe("contract/batch_never")}, {"resource_type": "Playbook"}]
    response = await gateway.post("/api/catalog/register/batch", json={"items": items})
    golden.check("catalog_register_batch_item_missing_content", expect(response, 422))
    # Validation fails the whole request: the valid item was not registered either.
    listed = await gateway.post("/api/catalog/list", json={"path": "contract/batch_never"})
    assert expect(listed, 200) == b'{"entries":[]}'


TOKEN = "contract-internal-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@asynccontextmanager
async def gated_gateway(process_mesh: ProcessMesh, token: str | None) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway app in this process, configured with `token`, over the session mesh's services."""
    info = process_mesh.info
    env = {
        **NOWHERE_ENV,
        "NOETL_SECRETS_ADDR": f"127.0.0.1:{info.ports.secrets}",
        "NOETL_CATALOG_ADDR": info.catalog_addr,
        "NOETL_EXECUTION_ADDRS": ",".join(info.execution_addrs),
        "NOETL_EVENTS_ADDRS": ",".join(info.events_addrs),
        "NOETL_OUTBOX_ADDRS": ",".join(info.outbox_addrs),
        **process_mesh.mesh_env("gateway"),
    }
    if token is not None:
        env["NOETL_INTERNAL_API_TOKEN"] = token
    settings = GatewaySettings.load(env)
    async with in_process_gateway(settings, http_timeout=30.0) as client:
        yield client


@pytest.fixture
async def internal(process_mesh: ProcessMesh) -> AsyncIterator[httpx.AsyncClient]:
    async with gated_gateway(process_mesh, TOKEN) as client:
        yield client


async def run_version(gateway: httpx.AsyncClient, path: str, version: int) -> None:
    """Runs one version to its end, which leaves events that reference it (execution history)."""
    started = await gateway.post("/api/execute", json={"path": path, "version": version})
    expect(started, 200)
    await wait_terminal(gateway, started.json()["execution_id"])


async def test_delete_archives_versions_with_history_and_removes_the_rest(
    gateway: httpx.AsyncClient, internal: httpx.AsyncClient, golden: GoldenFiles
) -> None:
    path = "contract/delete_probe"
    for _ in range(3):
        await register(gateway, probe(path))
    await run_version(gateway, path, 2)

    deleted = await internal.post("/api/catalog/delete", json={"path": path}, headers=AUTH)
    golden.check("catalog_delete", expect(deleted, 200))

    # Version 2 has history, so it was archived: no longer latest, listed only on request.
    expect(await gateway.post("/api/catalog/resource", json={"path": path}), 404)
    assert expect(await gateway.post("/api/catalog/list", json={"path": path}), 200) == b'{"entries":[]}'
    listed = await gateway.post("/api/catalog/list", json={"path": path, "include_archived": True})
    expect(listed, 200)
    assert [entry["version"] for entry in listed.json()["entries"]] == [2]
    again = await internal.post("/noetl/catalog/delete", json={"path": path}, headers=AUTH)
    golden.check("catalog_delete_nothing", expect(again, 200))


async def test_restore_clears_the_archive(
    gateway: httpx.AsyncClient, internal: httpx.AsyncClient, golden: GoldenFiles
) -> None:
    path = "contract/restore_probe"
    for _ in range(2):
        await register(gateway, probe(path))
    await run_version(gateway, path, 1)
    await run_version(gateway, path, 2)
    expect(await internal.post("/api/catalog/delete", json={"path": path}, headers=AUTH), 200)

    restored = await internal.post("/api/catalog/restore", json={"path": path, "version": "1"}, headers=AUTH)
    golden.check("catalog_restore", expect(restored, 200))
    latest = await gateway.post("/api/catalog/resource", json={"path": path})
    expect(latest, 200)
    assert latest.json()["version"] == 1

    again = await internal.post("/api/catalog/restore", json={"path": path, "version": 1}, headers=AUTH)
    golden.check("catalog_restore_nothing", expect(again, 200))


async def test_delete_without_path(internal: httpx.AsyncClient, golden: GoldenFiles) -> None:
    response = await internal.post("/api/catalog/delete", json={"version": 1}, headers=AUTH)
    golden.check("catalog_delete_missing_path", expect(response, 422))
    blank = await internal.post("/api/catalog/restore", json={"path": ""}, headers=AUTH)
    golden.check("catalog_restore_blank_path", expect(blank, 422))
    bad_version = await internal.post(
        "/api/catalog/delete", json={"path": "contract/x", "version": "two"}, headers=AUTH
    )
    golden.check("catalog_delete_bad_version", expect(bad_version, 422))


@pytest.mark.parametrize("route", ["delete", "restore"])
@pytest.mark.parametrize(
    ("case", "headers"),
    [
        ("no_header", {}),
        ("bad_scheme", {"Authorization": f"Basic {TOKEN}"}),
        ("wrong_token", {"Authorization": "Bearer not-the-token"}),
    ],
)
async def test_gate_refuses_without_the_token(
    internal: httpx.AsyncClient, golden: GoldenFiles, route: str, case: str, headers: dict[str, str]
) -> None:
    """403; the gate runs before the body is read, so a body that is not even JSON makes no difference."""
    response = await internal.post(f"/api/catalog/{route}", content=b"{", headers=headers)
    golden.check(f"catalog_{route}_{case}", expect(response, 403))


@pytest.mark.parametrize("route", ["delete", "restore"])
async def test_gate_without_a_configured_token(
    process_mesh: ProcessMesh, golden: GoldenFiles, route: str
) -> None:
    async with gated_gateway(process_mesh, None) as client:
        response = await client.post(f"/api/catalog/{route}", json={"path": "contract/x"}, headers=AUTH)
    golden.check(f"catalog_{route}_not_configured", expect(response, 503))


UI_PROBE = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: ui_probe
  path: contract/ui/probe
  description: A form for the contract
workload:
  who: Grüße
  times: 2
  ratio: 0.5
  loud: false
  tags: [a]
  db:
    host: localhost
    port: 5432
workflow:
  - step: start
    tool:
      kind: python
      code: |
        result = {}
"""


async def test_ui_schema(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    """The path keeps its slashes; `?version=` pins a version, `latest` or none means the newest."""
    await register(gateway, UI_PROBE)
    response = await gateway.get("/api/catalog/contract/ui/probe/ui_schema")
    body = expect(response, 200)
    golden.check("catalog_ui_schema", body)
    for variant in ("/noetl/catalog/contract/ui/probe/ui_schema", "/api/catalog/contract/ui/probe/ui_schema"):
        for params in ({"version": "1"}, {"version": "latest"}):
            assert expect(await gateway.get(variant, params=params), 200) == body


async def test_ui_schema_not_found(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    response = await gateway.get("/api/catalog/contract/nothing_here/ui_schema")
    golden.check("catalog_ui_schema_not_found", expect(response, 404))
    pinned = await gateway.get("/api/catalog/contract/ui/probe/ui_schema", params={"version": 99})
    assert expect(pinned, 404) == expect(response, 404)


async def test_ui_schema_bad_version(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    response = await gateway.get("/api/catalog/contract/ui/probe/ui_schema", params={"version": "two"})
    golden.check("catalog_ui_schema_bad_version", expect(response, 422))
