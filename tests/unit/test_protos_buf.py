"""The proto tree passes `buf lint` (STANDARD rules) and keeps the released contract: `buf breaking`
(FILE rules) against the committed image of the last released tree, `protos/released.image.yaml`
(protos/README.md says how it is rolled forward). Both rule sets are in buf.yaml at the root."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.shared import REPO

RELEASED = REPO / "protos" / "released.image.yaml"


def _buf(*args: str, workspace: Path = REPO) -> subprocess.CompletedProcess[str]:
    buf = shutil.which("buf", path=str(Path(sys.executable).parent))
    assert buf is not None, "buf is missing: it comes from the buf-bin package in requirements-dev.txt"
    return subprocess.run(
        [buf, *args], cwd=workspace, capture_output=True, text=True, timeout=120, check=False
    )


def test_buf_lint_is_clean() -> None:
    result = _buf("lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_tree_keeps_the_released_contract() -> None:
    result = _buf("breaking", "--against", str(RELEASED))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("removed", "reported"),
    [
        (
            "  optional string path = 1;\n",
            'Previously present field "1" with name "path" on message "StartRequest"',
        ),
        ("  rpc Cancel(CancelRequest) returns (CancelResponse);\n", 'Previously present RPC "Cancel"'),
    ],
)
def test_a_breaking_change_is_reported(tmp_path: Path, removed: str, reported: str) -> None:
    shutil.copy(REPO / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(REPO / "protos", tmp_path / "protos")
    proto = tmp_path / "protos" / "noetl" / "v1" / "execution.proto"
    text = proto.read_text()
    assert removed in text
    proto.write_text(text.replace(removed, "", 1))
    result = _buf("breaking", "--against", str(RELEASED), workspace=tmp_path)
    assert result.returncode != 0
    assert reported in result.stdout, result.stdout + result.stderr
