"""Golden bodies of `POST /api/execute` and `POST /api/execute/batch` (http-api.md §4.1, §4.2): the
starts and each documented error."""

from __future__ import annotations

import httpx
import pytest

from tests.contract.golden import GoldenFiles
from tests.contract.support import LINEAR_PATH, expect
from tests.helpers.invariants import FinishedRun, finish
from tests.helpers.mesh import ProcessMesh, new_rows, register

pytestmark = pytest.mark.e2e

NO_START = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: no_start
  path: contract/no_start
workflow:
  - step: begin
    tool:
      kind: python
      code: |
        result = {}
"""

NO_TOOL = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: no_tool
  path: contract/no_tool
workflow:
  - step: start
    desc: a step without a tool
"""


async def test_started(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, golden: GoldenFiles, linear_run: FinishedRun
) -> None:
    response = await gateway.post("/api/execute", json={"path": LINEAR_PATH, "payload": {"greeting": "hej"}})
    golden.check("execute_started", expect(response, 200))

    run = await finish(gateway, process_mesh.pg_dsn, response.json()["execution_id"])
    assert run.status == "COMPLETED"


async def test_started_by_catalog_id_through_the_gateway_prefix(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, golden: GoldenFiles, linear_run: FinishedRun
) -> None:
    """The CLI's gateway mode (`/noetl/...`) and the `catalog_id` + `workload` spelling."""
    body = {"catalog_id": linear_run.detail["catalog_id"], "workload": {}, "resource_kind": "playbook"}
    response = await gateway.post("/noetl/execute", json=body)
    golden.check("execute_started", expect(response, 200))

    run = await finish(gateway, process_mesh.pg_dsn, response.json()["execution_id"])
    assert run.status == "COMPLETED"


@pytest.mark.parametrize(
    ("name", "body", "status"),
    [
        ("execute_not_found_path", {"path": "contract/nothing_here"}, 404),
        ("execute_not_found_catalog_id", {"catalog_id": "123"}, 404),
        ("execute_missing_path", {"payload": {}}, 422),
        ("execute_kind_not_executable", {"path": LINEAR_PATH, "resource_kind": "credential"}, 422),
    ],
)
@pytest.mark.usefixtures("linear_run")
async def test_request_errors(
    gateway: httpx.AsyncClient, golden: GoldenFiles, name: str, body: dict[str, object], status: int
) -> None:
    golden.check(name, expect(await gateway.post("/api/execute", json=body), status))


async def test_playbook_without_start(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    await register(gateway, NO_START)
    response = await gateway.post("/api/execute", json={"path": "contract/no_start"})
    golden.check("execute_no_start", expect(response, 422))


async def test_step_without_tool(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    await register(gateway, NO_TOOL)
    response = await gateway.post("/api/execute", json={"path": "contract/no_tool"})
    golden.check("execute_missing_tool", expect(response, 400))


async def test_batch(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, golden: GoldenFiles, linear_run: FinishedRun
) -> None:
    """§4.2's example: two items start, one answers the single route's 404 detail."""
    body = {
        "executions": [
            {"path": LINEAR_PATH, "payload": {"greeting": "hej"}},
            {"path": "contract/nothing_here"},
            {"catalog_id": linear_run.detail["catalog_id"], "workload": {}, "resource_kind": "playbook"},
        ]
    }
    response = await gateway.post("/api/execute/batch", json=body)
    golden.check("execute_batch", expect(response, 200))

    results = response.json()["results"]
    single = await gateway.post("/api/execute", json={"path": "contract/nothing_here"})
    assert single.status_code == 404 and single.json()["detail"] == results[1]["error"]
    for item in (results[0], results[2]):
        run = await finish(gateway, process_mesh.pg_dsn, item["execution_id"])
        assert run.status == "COMPLETED"
    prefixed = await gateway.post(
        "/noetl/execute/batch", json={"executions": [{"path": "contract/nothing_here"}]}
    )
    assert expect(prefixed, 200)


async def test_batch_item_of_an_invalid_playbook(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    """The items the service refuses carry the single route's 400 and 422 details."""
    await register(gateway, NO_START)
    await register(gateway, NO_TOOL)
    body = {"executions": [{"path": "contract/no_start"}, {"path": "contract/no_tool"}]}
    response = await gateway.post("/api/execute/batch", json=body)
    golden.check("execute_batch_item_errors", expect(response, 200))
    for item in response.json()["results"]:
        single = await gateway.post("/api/execute", json={"path": body["executions"][item["index"]]["path"]})
        assert single.status_code in (400, 422) and single.json()["detail"] == item["error"]


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("execute_batch_empty", {"executions": []}),
        ("execute_batch_too_large", {"executions": [{"path": LINEAR_PATH}] * 1001}),
        ("execute_batch_missing", {}),
        (
            "execute_batch_item_invalid",
            {"executions": [{"path": 5}, {"payload": {}}, "x", {"path": LINEAR_PATH}]},
        ),
        ("execute_batch_not_an_object", []),
    ],
)
async def test_batch_request_errors(
    gateway: httpx.AsyncClient,
    process_mesh: ProcessMesh,
    golden: GoldenFiles,
    name: str,
    body: object,
) -> None:
    """A malformed batch starts nothing."""
    async with new_rows(process_mesh.pg_dsn) as created:
        response = await gateway.post("/api/execute/batch", json=body)
    golden.check(name, expect(response, 422))
    assert created.executions == 0
