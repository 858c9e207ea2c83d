"""Every tool kind this worker runs, by name (dsl.md §9.1)."""

from __future__ import annotations

from worker.tools.base import Tool
from worker.tools.noop import NoopTool
from worker.tools.python import PythonTool
from worker.tools.python_runner import PythonRunner


def build_tools(runner: PythonRunner) -> dict[str, Tool]:
    return {"noop": NoopTool(), "python": PythonTool(runner)}
