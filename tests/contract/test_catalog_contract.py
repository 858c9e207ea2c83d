"""Golden bodies of the catalog routes (http-api.md §3.1, §3.3, §3.4, §13.1)."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.contract.golden import GoldenFiles
from tests.contract.support import LINEAR_PATH, expect
from tests.helpers.invariants import FinishedRun

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
