"""Contract tests: golden response bodies per route, against the session mesh.

`--update-golden` rewrites the golden files instead of comparing (pass it with `tests/contract`
on the command line, so this conftest is loaded before options are parsed).
"""

from __future__ import annotations

import httpx
import pytest

from tests.contract.golden import GoldenFiles
from tests.contract.support import LINEAR, LINEAR_PATH
from tests.helpers.invariants import FinishedRun, finish
from tests.helpers.mesh import ProcessMesh, execute, register


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/contract/golden/*.json from the responses instead of comparing",
    )


@pytest.fixture(scope="session")
def golden(request: pytest.FixtureRequest) -> GoldenFiles:
    return GoldenFiles(update=bool(request.config.getoption("--update-golden", default=False)))


@pytest.fixture(scope="session")
async def linear_run(process_mesh: ProcessMesh) -> FinishedRun:
    """One finished run of the contract playbook, registered once per session (so at version 1)."""
    async with httpx.AsyncClient(base_url=process_mesh.gateway_url, timeout=30.0) as http:
        await register(http, LINEAR)
        return await finish(http, process_mesh.pg_dsn, await execute(http, LINEAR_PATH))
