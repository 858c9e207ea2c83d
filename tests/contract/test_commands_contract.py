"""Golden bodies of the claim protocol (http-api.md §6.1, §6.2, §13.4)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.contract.golden import GoldenFiles
from tests.contract.support import expect
from tests.helpers.invariants import FinishedRun, finish
from tests.helpers.mesh import ProcessMesh, gated_playbook, register, wait_claimed

pytestmark = pytest.mark.e2e

GATED_PATH = "contract/gated"


def issued_event_id(run: FinishedRun, step: str) -> int:
    issued = [e for e in run.events if e["event_type"] == "command.issued" and e["node_name"] == step]
    assert len(issued) == 1, issued
    event_id: int = issued[0]["event_id"]
    return event_id


async def test_get_command(gateway: httpx.AsyncClient, golden: GoldenFiles, linear_run: FinishedRun) -> None:
    response = await gateway.get(f"/api/commands/{issued_event_id(linear_run, 'start')}")
    golden.check("command_get", expect(response, 200))


async def test_get_unknown_command(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    golden.check("command_get_not_found", expect(await gateway.get("/api/commands/987654321"), 404))


async def test_claim_unknown_command(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    response = await gateway.post("/api/commands/987654321/claim", json={"worker_id": "contract"})
    golden.check("command_claim_not_found", expect(response, 404))


async def test_claim_without_worker_id(
    gateway: httpx.AsyncClient, golden: GoldenFiles, linear_run: FinishedRun
) -> None:
    response = await gateway.post(f"/api/commands/{issued_event_id(linear_run, 'start')}/claim", json={})
    golden.check("command_claim_missing_worker", expect(response, 422))


async def test_claim_of_a_completed_command(
    gateway: httpx.AsyncClient, golden: GoldenFiles, linear_run: FinishedRun
) -> None:
    response = await gateway.post(
        f"/api/commands/{issued_event_id(linear_run, 'end')}/claim", json={"worker_id": "contract"}
    )
    golden.check("command_claim_already_terminal", expect(response, 409))
    assert "retry-after" not in response.headers


async def test_claims_of_a_live_command(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, golden: GoldenFiles, tmp_path: Path
) -> None:
    """The holder re-claiming is idempotent (200, nothing written); anyone else gets 409 + Retry-After."""
    gate = tmp_path / "gate"
    await register(gateway, gated_playbook(GATED_PATH))
    started = await gateway.post("/api/execute", json={"path": GATED_PATH, "payload": {"gate": str(gate)}})
    expect(started, 200)
    execution_id = started.json()["execution_id"]
    try:
        live = await wait_claimed(gateway, execution_id, "start")
        # The gate path is per test; everything else in the command is stable.
        paths = {str(gate): "<GATE>"}

        live_command = await gateway.get(f"/api/commands/{live.event_id}")
        golden.check("command_get_live", expect(live_command, 200), paths)

        again = await gateway.post(f"/api/commands/{live.event_id}/claim", json={"worker_id": live.worker_id})
        golden.check("command_claim_same_worker", expect(again, 200), paths)

        other = await gateway.post(f"/api/commands/{live.event_id}/claim", json={"worker_id": "contract"})
        golden.check("command_claim_active", expect(other, 409))
        assert other.headers["retry-after"] == "2"
    finally:
        gate.touch()

    run = await finish(gateway, process_mesh.pg_dsn, execution_id)
    assert run.status == "COMPLETED"
    assert [e["event_type"] for e in run.events].count("command.claimed") == 1
