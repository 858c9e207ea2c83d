"""Browser tests: headless Chromium (Debian's `chromium`) drives the console of the session mesh.

One browser for the whole module set; each test gets a fresh tab. Screenshots go to a temp
directory (kept after the run) whose path is printed at the end, for a reviewer to look at.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.helpers.browser import Browser, Page, chromium, chromium_path
from tests.helpers.mesh import ProcessMesh

_SHOTS: list[Path] = []


@pytest.fixture(scope="session")
def screenshots() -> Iterator[Path]:
    """A temp dir of its own, outside pytest's basetemp: pytest keeps only its last three
    basetemps, and another run on the same machine would delete the pictures before anyone looked."""
    folder = Path(tempfile.mkdtemp(prefix="noetl-console-screenshots-"))
    _SHOTS.append(folder)
    yield folder


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_path()
    if executable is None:
        pytest.fail(
            "Chromium is not installed: ./run-tests installs Debian's `chromium` (tools/bootstrap.py)"
        )
    async with chromium(executable) as running:
        yield running


@pytest.fixture
async def page(browser: Browser, process_mesh: ProcessMesh) -> AsyncIterator[Page]:
    tab = await browser.new_page()
    try:
        yield tab
    finally:
        await tab.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for folder in _SHOTS:
        shots = sorted(folder.glob("*.png"))
        if shots:
            terminalreporter.write_line(f"console screenshots ({len(shots)}): {folder}")
