"""Golden bodies of the variable routes (http-api.md §8): every shape, message and status."""

from __future__ import annotations

import httpx
import pytest

from tests.contract.golden import GoldenFiles
from tests.contract.support import expect

pytestmark = pytest.mark.e2e

# Variables belong to an execution id; none has to exist (as in the reference).
EXECUTION_ID = 612400000000000001


async def test_lifecycle(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    base = f"/api/vars/{EXECUTION_ID}"
    await gateway.delete(base)  # a re-run of the session starts clean

    body = {"variables": {"x": 1, "y": "a", "grüße": {"nested": [1, 2.5, None]}}, "source_step": "start"}
    golden.check("vars_set", expect(await gateway.post(base, json=body), 200))
    golden.check("vars_list", expect(await gateway.get(base), 200))

    golden.check("vars_get", expect(await gateway.get(f"{base}/x"), 200))
    assert (await gateway.get(f"{base}/x")).json()["access_count"] == 2
    listed = (await gateway.get(base)).json()["variables"]
    assert listed["x"]["access_count"] == 2 and listed["y"]["access_count"] == 0

    replaced = await gateway.post(
        f"/noetl/vars/{EXECUTION_ID}", json={"variables": {"x": 2}, "var_type": "computed"}
    )
    assert expect(replaced, 200)
    after = (await gateway.get(f"{base}/x")).json()
    assert (after["value"], after["type"], after["source_step"], after["access_count"]) == (
        2,
        "computed",
        None,
        3,
    )

    golden.check("vars_delete", expect(await gateway.delete(f"{base}/x"), 200))
    golden.check("vars_delete_absent", expect(await gateway.delete(f"{base}/x"), 200))
    golden.check("vars_delete_all", expect(await gateway.delete(base), 200))
    assert (await gateway.get(base)).json() == {"execution_id": EXECUTION_ID, "variables": {}, "count": 0}


OTHER = f"/api/vars/{EXECUTION_ID + 1}"


@pytest.mark.parametrize(
    ("name", "call", "status"),
    [
        ("vars_set_empty", ("POST", OTHER, {"variables": {}}), 400),
        ("vars_set_bad_type", ("POST", OTHER, {"variables": {"x": 1}, "var_type": "global"}), 400),
        ("vars_set_blank_type", ("POST", OTHER, {"variables": {"x": 1}, "var_type": ""}), 400),
        ("vars_set_missing_variables", ("POST", OTHER, {"var_type": "computed"}), 422),
        ("vars_set_variables_not_an_object", ("POST", OTHER, {"variables": [1], "source_step": 3}), 422),
        ("vars_get_not_found", ("GET", f"{OTHER}/ghost", None), 404),
        ("vars_non_numeric_id", ("GET", "/api/vars/abc", None), 422),
    ],
)
async def test_errors(
    gateway: httpx.AsyncClient, golden: GoldenFiles, name: str, call: tuple[str, str, object], status: int
) -> None:
    method, url, body = call
    golden.check(name, expect(await gateway.request(method, url, json=body), status))


async def test_a_nul_character_is_refused_at_the_edge_and_nothing_is_stored(
    gateway: httpx.AsyncClient,
) -> None:
    """Postgres cannot store U+0000: 422 naming the variable instead of a 500 from the database
    (the service's own 500 `Failed to set variables: ...` is tested in tests/integration)."""
    url = f"/api/vars/{EXECUTION_ID + 2}"
    response = await gateway.post(url, json={"variables": {"ok": 1, "x": "a\u0000b"}})
    assert response.status_code == 422
    assert [(item["type"], item["loc"]) for item in response.json()["detail"]] == [
        ("string_nul", ["body", "variables", "x"])
    ]
    assert (await gateway.get(url)).json()["count"] == 0
