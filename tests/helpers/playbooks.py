"""Small playbooks registered through the catalog and started through the execution service."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
from noetl.v1 import catalog_pb2, execution_pb2

from tests.helpers.services import Mesh


def noop_playbook(path: str) -> str:
    """One `noop` step: starting it issues exactly one command, which nothing runs."""
    return noop_chain(path, ("start",))


def noop_chain(path: str, steps: tuple[str, ...]) -> str:
    """`noop` steps in a line, each routing to the next.

    Name and path are quoted: an all-digit name would otherwise be read as a YAML number.
    """
    lines = [
        "apiVersion: noetl.io/v2",
        "kind: Playbook",
        "metadata:",
        f'  name: "{path.rpartition("/")[2]}"',
        f'  path: "{path}"',
        "workflow:",
    ]
    for step, after in zip(steps, (*steps[1:], None), strict=True):
        lines += [f"  - step: {step}", "    tool:", "      kind: noop"]
        if after is not None:
            lines += ["    next:", "      arcs:", f"        - step: {after}"]
    return "\n".join(lines) + "\n"


async def register_noop(mesh: Mesh, prefix: str) -> str:
    """Registers a fresh noop playbook and returns its path."""
    path = f"tests/{prefix}/{uuid.uuid4().hex[:10]}"
    await mesh.catalog.Register(catalog_pb2.RegisterRequest(content=noop_playbook(path)), timeout=10)
    return path


@dataclass(frozen=True, slots=True)
class Started:
    execution_id: int
    catalog_id: int
    # The start step's command: its `command.issued` event id (what workers claim) and command id.
    event_id: int
    command_id: int


async def start_noop(mesh: Mesh, db: asyncpg.Connection, path: str) -> Started:
    """Starts `path` through ExecutionService.Start and reads back its one command row."""
    response = await mesh.execution.Start(execution_pb2.StartRequest(path=path), timeout=20)
    assert response.commands_generated == 1
    row = await db.fetchrow(
        "SELECT event_id, command_id, catalog_id FROM noetl.command WHERE execution_id = $1",
        response.execution_id,
    )
    assert row is not None, f"execution {response.execution_id} has no command row"
    return Started(response.execution_id, row["catalog_id"], row["event_id"], row["command_id"])
