from __future__ import annotations

from worker.tools.base import ToolCall, ToolResult


class NoopTool:
    """Does nothing and completes with `{}` (dsl.md §9.8)."""

    async def run(self, call: ToolCall) -> ToolResult:
        return ToolResult(ok=True, data={})
