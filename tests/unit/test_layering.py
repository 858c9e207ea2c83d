"""What may import what (docs/architecture.md, "Layers"): the structure drawn from the imports.

`kernel` (infrastructure) imports no other package of ours; `language` (the NoETL language core)
imports only the kernel; each service, the gateway, the worker and the launcher are peers over the
two and import none of each other. Every `import` counts, including those inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PEERS = ("gateway_http", "worker", "noetl_mesh")
SERVICES = tuple(
    sorted(f"services.{p.name}" for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists())
)
SHARED = frozenset({"kernel", "language"})
# Each unit → the units of ours it may import (besides itself).
ALLOWED: dict[str, frozenset[str]] = {
    "kernel": frozenset(),
    "language": frozenset({"kernel"}),
    **{unit: SHARED for unit in (*SERVICES, *PEERS)},
}


def unit_of(module: str) -> str | None:
    """The layer unit a dotted module belongs to (a service is a unit of its own), or None for
    modules that are not ours (the standard library, dependencies, the generated `noetl.v1`)."""
    parts = module.split(".")
    if parts[0] == "services":
        return ".".join(parts[:2]) if len(parts) > 1 else "services"
    return parts[0] if parts[0] in ALLOWED else None


def imported_units(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
        else:
            continue
        found |= {unit for unit in map(unit_of, modules) if unit is not None}
    return found


def violations(unit: str, source: str) -> set[str]:
    """The units `source`, a module of `unit`, imports without being allowed to."""
    return imported_units(source) - ALLOWED[unit] - {unit}


def modules_of(unit: str) -> list[Path]:
    return sorted((ROOT / unit.replace(".", "/")).rglob("*.py"))


def test_every_package_of_ours_has_a_layer() -> None:
    tops = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert tops - {"services", "tests", "tools", "bench"} == set(ALLOWED) - set(SERVICES)
    assert SERVICES, "no service packages found"


@pytest.mark.parametrize("unit", sorted(ALLOWED))
def test_a_unit_imports_only_the_layers_below_it(unit: str) -> None:
    modules = modules_of(unit)
    assert modules, f"{unit} has no modules"
    found = {
        f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}"
        for path in modules
        if (bad := violations(unit, path.read_text()))
    }
    assert not found, f"{unit} imports outside its layer:\n" + "\n".join(sorted(found))


@pytest.mark.parametrize(
    ("unit", "source", "bad"),
    [
        ("worker", "from services.execution.engine import records", {"services.execution"}),
        ("worker", "def f():\n    import gateway_http.errors", {"gateway_http"}),
        ("gateway_http", "from services.common import jsonutil", {"services.common"}),
        ("kernel", "from language.event_types import EventType", {"language"}),
        ("kernel", "import services.events.store", {"services.events"}),
        ("language", "from worker.settings import Settings", {"worker"}),
        ("services.catalog", "from services.events.api import EventsApi", {"services.events"}),
        ("noetl_mesh", "import worker.consumer", {"worker"}),
    ],
)
def test_the_check_catches_an_import_across_layers(unit: str, source: str, bad: set[str]) -> None:
    assert violations(unit, source) == bad


def test_the_check_allows_the_shared_layers_and_foreign_modules() -> None:
    source = "import asyncpg\nfrom noetl.v1 import events_pb2\nfrom kernel import jsonutil\nfrom language import sql\n"
    assert violations("worker", source) == set()
    assert violations("services.execution", source + "from services.execution.engine import state\n") == set()
    assert violations("language", "from kernel.errors import InvalidArgument") == set()
