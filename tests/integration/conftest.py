"""Fixtures for integration tests: the in-process mesh and a database connection, per module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.helpers.bus import unique_bus
from tests.helpers.infra import NatsServer
from tests.helpers.services import Mesh, running_mesh


@pytest.fixture(scope="module")
async def mesh(
    module_dsn: str, nats_server: NatsServer, request: pytest.FixtureRequest
) -> AsyncIterator[Mesh]:
    """Catalog, outbox, execution and events on a fresh database, with streams of the module's own."""
    label = request.module.__name__.rpartition(".")[2].removeprefix("test_")
    async with running_mesh(module_dsn, unique_bus(nats_server.url, label)) as running:
        yield running


@pytest.fixture(scope="module")
async def db(mesh: Mesh) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the mesh's database, for what only SQL can show (or set up)."""
    conn = await asyncpg.connect(mesh.dsn)
    yield conn
    await conn.close()
