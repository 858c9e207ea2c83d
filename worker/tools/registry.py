"""Every tool kind this worker runs, by name (dsl.md §9.1)."""

from __future__ import annotations

from dataclasses import dataclass

from noetl.v1 import events_pb2_grpc, execution_pb2_grpc

from kernel.grpc_client import Sharded
from worker.results import ResultOffload
from worker.tools.base import Tool
from worker.tools.duckdb_sql import DuckDbTool
from worker.tools.http import HttpTool
from worker.tools.noop import NoopTool
from worker.tools.playbook import PlaybookTool
from worker.tools.postgres import PostgresTool
from worker.tools.python import PythonTool
from worker.tools.python_runner import PythonRunner
from worker.tools.secrets_tool import SecretsTool
from worker.tools.shell import ShellTool


@dataclass(frozen=True)
class Mesh:
    """The services the `playbook` tool starts and follows child executions through."""

    executions: Sharded[execution_pb2_grpc.ExecutionServiceStub]
    events: Sharded[events_pb2_grpc.EventServiceStub]
    # Reads a child's externalised step result back (dsl.md §9.12).
    results: ResultOffload


def build_tools(
    runner: PythonRunner, mesh: Mesh | None = None, http: HttpTool | None = None
) -> dict[str, Tool]:
    tools: dict[str, Tool] = {
        "noop": NoopTool(),
        "python": PythonTool(runner),
        "http": http or HttpTool(),
        "shell": ShellTool(),
        "duckdb": DuckDbTool(),
        "postgres": PostgresTool(),
        "secrets": SecretsTool(),
    }
    if mesh is not None:
        tools["playbook"] = PlaybookTool(mesh.executions, mesh.events, mesh.results)
    return tools
