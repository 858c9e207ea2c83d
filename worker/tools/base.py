"""What every tool gets and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


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


@dataclass(frozen=True, slots=True)
class ToolResult:
    ok: bool
    data: Any
    error: str | None = None
    stdout: str | None = None
    stderr: str | None = None


class Tool(Protocol):
    async def run(self, call: ToolCall) -> ToolResult: ...
