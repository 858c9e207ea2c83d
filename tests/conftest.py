"""Session-wide test infrastructure: one Postgres and one NATS for the whole run, and one mesh.

Tests isolate from each other inside them (a database per module via `module_dsn`, unique
stream and subject names), which is far cheaper than a server per test on two cores.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import infra
from tests.helpers.cli import isolated_env
from tests.helpers.infra import NatsServer, PgServer
from tests.helpers.mesh import ProcessMesh, running_process_mesh


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    with infra.postgres_server(os.environ, tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with infra.nats_server(os.environ, tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture(scope="module")
async def module_dsn(pg_server: PgServer, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A database of its own for each test module, dropped after the module."""
    dsn = await infra.fresh_database(pg_server, prefix=request.module.__name__.rpartition(".")[2])
    yield dsn
    await infra.drop_database(pg_server, dsn)


@pytest.fixture(scope="session")
async def process_mesh(
    pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ProcessMesh]:
    """The whole mesh as processes, shared by the e2e and contract tests; stopped at the end."""
    async with running_process_mesh(pg_server, tmp_path_factory.mktemp("mesh")) as running:
        yield running


@pytest.fixture
async def gateway(process_mesh: ProcessMesh) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the session mesh's gateway."""
    async with httpx.AsyncClient(base_url=process_mesh.gateway_url, timeout=30.0) as client:
        yield client


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """The environment for the real `noetl` CLI: a home of its own (no saved contexts) and none of
    the CLI's `NOETL_*` settings. Skips the test when the CLI is not installed."""
    return isolated_env(tmp_path / "home")
