"""Generate the Python gRPC stubs from protos/ into gen/ (one command: `python -m tools.protogen`).

The output tree mirrors the proto package (`gen/noetl/v1/*_pb2.py`), so generated imports
(`from noetl.v1 import common_pb2`) resolve with `gen/` on the path and need no fix-ups.
`--check DIR` writes into DIR instead, which the staleness test uses.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GEN = ROOT / "gen"
STAMP = ".protos.sha256"


def proto_files() -> list[Path]:
    return sorted(PROTOS.rglob("*.proto"))


def sources_digest() -> str:
    digest = hashlib.sha256()
    for path in proto_files():
        digest.update(path.relative_to(PROTOS).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def generate(out: Path) -> None:
    """Raises SystemExit when protoc fails."""
    out.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *[str(p.relative_to(PROTOS)) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Namespace-free packages so `noetl.v1` imports without an installed distribution.
    for package in {p.parent for p in out.rglob("*_pb2.py")}:
        current = package
        while current != out:
            (current / "__init__.py").touch()
            current = current.parent
    (out / STAMP).write_text(sources_digest() + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=GEN)
    options = parser.parse_args()
    generate(options.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
