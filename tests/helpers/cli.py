"""The real `noetl` CLI (PyPI noetl 5.3.2, in `.venv/cli`) as the e2e tests drive it (cli-wire.md).

Every run gets an environment of its own (`isolated_env`): a fresh home, so no saved context of a
developer is read or written, and none of the CLI's `NOETL_*` settings.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.mesh import NOETL_CLI, Completed, ProcessMesh, run_process


def isolated_env(home: Path) -> dict[str, str]:
    """This process's environment without `NOETL_*`, with `home` (created) as HOME and config dir.

    Skips the test when the CLI is not installed.
    """
    if not NOETL_CLI.is_file():
        pytest.skip(f"the noetl CLI is not installed at {NOETL_CLI}")
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOETL_")}
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    return env


async def noetl(
    env: Mapping[str, str],
    mesh: ProcessMesh | None,
    *args: str,
    gateway: bool = False,
    seconds: float = 30.0,
) -> Completed:
    """Runs `noetl [--server-url <mesh gateway>] [--gateway] ARGS` with `env` and returns its outcome.

    `mesh` None: no server flag, for commands that name their URL themselves (`context init
    --from-gateway URL`). `gateway`: gateway mode, every call under `/noetl/...` (cli-wire.md §1).
    """
    server = () if mesh is None else ("--server-url", mesh.gateway_url)
    mode = ("--gateway",) if gateway else ()
    return await run_process(NOETL_CLI, *server, *mode, *args, env=dict(env), seconds=seconds)


def plain(completed: Completed) -> str:
    """The CLI's stdout without colours and with the padding after labels collapsed to one space."""
    return re.sub(r"[ \t]+", " ", re.sub(r"\x1b\[[0-9;]*m", "", completed.stdout))


def after_header(completed: Completed, header: str) -> Any:
    """The JSON the CLI pretty-prints after its header lines (`Validating...`, `Catalog (T):`).

    Asserts rc 0 and that `header` is among the lines before the JSON.
    """
    assert completed.returncode == 0, completed.describe()
    head, brace, rest = completed.stdout.partition("\n{")
    assert header in head and brace, completed.describe()
    return json.loads("{" + rest)
