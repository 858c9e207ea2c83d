"""The shared fixtures beside the repository (`../shared/fixtures`), never copied into it.

Without them a fixture test skips on a developer's machine, and fails under `CI=true`: a CI run
that silently skipped them would report a pass for tests that never ran.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def fixture_file(relative: str) -> Path:
    """The file under shared/fixtures; a skip when it is absent, a failure when it is absent in CI."""
    path = FIXTURES / relative
    if not path.is_file():
        message = f"shared fixture {relative} not found under {FIXTURES}"
        if in_ci():
            pytest.fail(f"{message} (CI=true: the shared fixtures must be checked out beside the repo)")
        pytest.skip(message)
    return path
