"""What every tool gets and returns."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class ToolResult:
    ok: bool
    data: Any
    error: str | None = None
    stdout: str | None = None
    stderr: str | None = None


class Tool(Protocol):
    async def run(self, call: ToolCall) -> ToolResult: ...
