"""The tree passes the checks STYLE.md asks for: strict mypy over every file pyproject.toml names
(services, gateway, worker, launcher, tools, tests, bench), `ruff check` and `ruff format --check`.

Real tool runs in the repository, as a developer would type them; mypy keeps its cache in
`.mypy_cache` (ignored by git), so a run after the first takes a few seconds.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from tests.helpers.shared import REPO

# A cold mypy run over the whole tree takes ≈15 s on a quiet machine; the default 120 s test
# timeout is too tight on a loaded one.
SECONDS = 600


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=SECONDS, check=False
    )


def test_mypy_covers_the_tests_and_the_benchmarks() -> None:
    configured = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]["files"]
    assert {"services", "gateway_http", "worker", "noetl_mesh", "tools", "tests", "bench"} <= set(configured)


@pytest.mark.timeout(SECONDS)
def test_strict_mypy_is_clean() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_check_is_clean() -> None:
    result = _run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = _run("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr
