"""docs/security.md shows the caller by RPC matrix a platform team reads: it must be the policy."""

from __future__ import annotations

import re
from pathlib import Path

from kernel.mesh_policy import CALLERS, POLICY

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def test_the_documented_matrix_is_the_policy() -> None:
    lines = DOC.read_text().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| RPC |"))
    columns = [cell.strip() for cell in lines[header].strip("|").split("|")][1:]
    assert columns == list(CALLERS)
    documented: dict[str, frozenset[str]] = {}
    for line in lines[header + 2 :]:
        if not line.startswith("| `"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rpc = re.sub(r"`", "", cells[0])
        documented[rpc] = frozenset(c for c, mark in zip(columns, cells[1:], strict=True) if mark)
    assert documented == dict(POLICY)
