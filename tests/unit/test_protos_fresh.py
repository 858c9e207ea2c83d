"""The generated stubs in gen/ are exactly what protoc makes from protos/ today."""

from __future__ import annotations

from pathlib import Path

from tools import protogen


def _stubs(root: Path) -> dict[Path, bytes]:
    return {
        path.relative_to(root): path.read_bytes()
        for path in root.rglob("*.py*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_generated_stubs_are_not_stale(tmp_path: Path) -> None:
    protogen.generate(tmp_path)
    fresh, current = _stubs(tmp_path), _stubs(protogen.GEN)
    stale = sorted(
        str(name) for name in fresh.keys() | current.keys() if fresh.get(name) != current.get(name)
    )
    assert not stale, f"stubs out of date, run `python -m tools.protogen`: {stale}"
