"""What every tool gets and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from worker.credentials import CommandSecrets


@dataclass(frozen=True, slots=True)
class ToolCall:
    execution_id: int
    command_id: int
    step: str
    kind: str
    config: dict[str, Any]  # the rendered tool_config
    input: dict[str, Any]
    render_context: dict[str, Any]
    timeout: float | None
    server_url: str
    # Worker-side values a tool may expose to user code: inside a pipeline, the earlier tasks'
    # results by label, `_prev` and the tasks' `set` values (python's `variables`, dsl.md §9.3).
    variables: dict[str, Any] = field(default_factory=dict)
    # The command's secrets: `auth` aliases resolve through it, and what it resolved is redacted.
    secrets: CommandSecrets = field(default_factory=CommandSecrets)
    # The execution's trace (command meta), handed on to child executions (dsl.md §14).
    trace: Any = None


@dataclass(frozen=True, slots=True)
class ToolResult:
    ok: bool
    data: Any
    error: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    # What kind of failure, when a tool knows it (`timeout`, `connection`): read by policy rules
    # (dsl.md §9.11) in preference to the wording of `error`.
    error_kind: str | None = None


class Tool(Protocol):
    async def run(self, call: ToolCall) -> ToolResult: ...
