"""Golden bodies of the execution read routes (http-api.md §4.4, §4.5, §13.2, §13.3)."""

from __future__ import annotations

import httpx
import pytest

from tests.contract.golden import GoldenFiles
from tests.contract.support import expect
from tests.helpers.invariants import FinishedRun

pytestmark = pytest.mark.e2e


async def test_detail(gateway: httpx.AsyncClient, golden: GoldenFiles, linear_run: FinishedRun) -> None:
    response = await gateway.get(f"/api/executions/{linear_run.execution_id}")
    golden.check("execution_detail", expect(response, 200))


async def test_detail_is_the_same_under_the_gateway_prefix(
    gateway: httpx.AsyncClient, linear_run: FinishedRun
) -> None:
    api = expect(await gateway.get(f"/api/executions/{linear_run.execution_id}"), 200)
    prefixed = expect(await gateway.get(f"/noetl/executions/{linear_run.execution_id}"), 200)
    assert prefixed == api


async def test_detail_second_page(
    gateway: httpx.AsyncClient, golden: GoldenFiles, linear_run: FinishedRun
) -> None:
    response = await gateway.get(
        f"/api/executions/{linear_run.execution_id}", params={"page": 2, "page_size": 10}
    )
    golden.check("execution_detail_page_2", expect(response, 200))


async def test_detail_without_events(
    gateway: httpx.AsyncClient, golden: GoldenFiles, linear_run: FinishedRun
) -> None:
    response = await gateway.get(
        f"/api/executions/{linear_run.execution_id}", params={"include_events": "false"}
    )
    golden.check("execution_detail_without_events", expect(response, 200))


async def test_detail_filtered_by_event_type(
    gateway: httpx.AsyncClient, golden: GoldenFiles, linear_run: FinishedRun
) -> None:
    response = await gateway.get(
        f"/api/executions/{linear_run.execution_id}", params={"event_type": "playbook.completed"}
    )
    golden.check("execution_detail_terminal_event", expect(response, 200))


@pytest.mark.parametrize(
    ("name", "url", "status"),
    [
        ("execution_detail_not_found", "/api/executions/123456789", 404),
        ("execution_detail_non_numeric", "/api/executions/abc", 422),
        ("execution_detail_page_size_too_small", "/api/executions/123456789?page_size=5", 422),
        ("execution_detail_page_not_a_number", "/api/executions/123456789?page=x", 422),
    ],
)
async def test_detail_errors(
    gateway: httpx.AsyncClient, golden: GoldenFiles, name: str, url: str, status: int
) -> None:
    golden.check(name, expect(await gateway.get(url), status))


async def test_status(gateway: httpx.AsyncClient, golden: GoldenFiles, linear_run: FinishedRun) -> None:
    response = await gateway.get(f"/api/executions/{linear_run.execution_id}/status")
    golden.check("execution_status", expect(response, 200))

    prefixed = await gateway.get(f"/noetl/executions/{linear_run.execution_id}/status")
    assert expect(prefixed, 200) == response.content


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("execution_status_not_found", "/api/executions/123456789/status"),
        ("execution_status_non_numeric", "/api/executions/abc/status"),
    ],
)
async def test_status_errors(gateway: httpx.AsyncClient, golden: GoldenFiles, name: str, url: str) -> None:
    golden.check(name, expect(await gateway.get(url), 404))
