"""The `python` tool (dsl.md §9.3) on top of the isolated runner."""

from __future__ import annotations

import base64
from typing import Any

from worker.tools.base import ToolCall, ToolResult
from worker.tools.python_runner import PythonRunner


class PythonTool:
    def __init__(self, runner: PythonRunner) -> None:
        self._runner = runner

    async def run(self, call: ToolCall) -> ToolResult:
        code = _code(call.config)
        if code is None:
            return ToolResult(ok=False, data=None, error="python tool needs 'code' or 'code_b64'")
        context = {
            "args": call.input,
            "variables": call.variables,
            "execution_id": str(call.execution_id),
            "step": call.step,
            "server_url": call.server_url,
        }
        outcome = await self._runner.run(
            code,
            call.input,
            context=context,
            variables=call.variables,
            libs=_libs(call.config.get("libs")),
            timeout=call.timeout,
        )
        if outcome.ok:
            return ToolResult(ok=True, data=outcome.data, stdout=outcome.stdout, stderr=outcome.stderr)
        error = outcome.error
        if error is not None and error.startswith("timeout:") and call.timeout is not None:
            error = f"timeout: step '{call.step}' exceeded {call.timeout:g}s"  # dsl.md §17.4
        return ToolResult(ok=False, data=None, error=error, stdout=outcome.stdout, stderr=outcome.stderr)


def _code(config: dict[str, Any]) -> str | None:
    encoded = config.get("code_b64")
    if isinstance(encoded, str) and encoded:
        return base64.b64decode(encoded).decode("utf-8")
    code = config.get("code")
    return code if isinstance(code, str) else None


def _libs(raw: Any) -> dict[str, str] | None:
    if not isinstance(raw, dict):
        return None
    return {str(alias): str(module) for alias, module in raw.items()}
