"""A three-shard mesh for the tests in this directory: each shard its own execution, events and
outbox process and its own database beside the cluster database (`noetl-mesh up --shards 3`).

Modules here that import e2e tests run them unchanged against this mesh: `process_mesh` below
overrides the session's one-shard mesh for every test collected under tests/sharded/.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.helpers.infra import PgServer
from tests.helpers.mesh import ProcessMesh, running_process_mesh

SHARDS = 3
# The internal routes (outbox counts and dead letters) answer only with a token configured.
INTERNAL_TOKEN = "sharded-internal-token"


@pytest.fixture(scope="session")
async def process_mesh(
    pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ProcessMesh]:
    env = {"NOETL_INTERNAL_API_TOKEN": INTERNAL_TOKEN}
    async with running_process_mesh(
        pg_server, tmp_path_factory.mktemp("mesh3"), env, shards=SHARDS
    ) as running:
        yield running
