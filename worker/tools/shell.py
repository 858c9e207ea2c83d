"""The `shell` tool (dsl.md §9.7): `command` or `cmds` through `sh -c`.

Result data `{stdout, stderr, exit_code}`; a non-zero exit code is a tool error. The command runs in
a process group of its own, which is killed whole at the timeout (`timeout_seconds`, capped by the
command's budget) or when the command is cancelled. Output beyond `max_output_bytes` per stream
is cut with a note.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from typing import Any

from worker.tools.base import ToolCall, ToolResult

DEFAULT_MAX_OUTPUT_BYTES = 1_000_000


class ShellTool:
    def __init__(self, *, max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES) -> None:
        self._max_output = max_output_bytes

    async def run(self, call: ToolCall) -> ToolResult:
        config = call.config
        script = _script(config)
        if script is None:
            return ToolResult(ok=False, data=None, error="shell tool needs 'command' or 'cmds'")
        cwd = config.get("cwd")
        env = config.get("env")
        environment = (
            {**os.environ, **{str(k): _text(v) for k, v in env.items()}} if isinstance(env, Mapping) else None
        )
        limit = _limit(config.get("timeout_seconds", config.get("timeout")), call.timeout)
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                script,
                cwd=str(cwd) if isinstance(cwd, str) and cwd else None,
                env=environment,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            return ToolResult(ok=False, data=None, error=f"shell could not start: {exc}")
        out, err = bytearray(), bytearray()
        readers = [
            asyncio.create_task(_collect(proc.stdout, out, self._max_output)),
            asyncio.create_task(_collect(proc.stderr, err, self._max_output)),
        ]
        try:
            async with asyncio.timeout(limit):
                await proc.wait()
        except TimeoutError:
            _kill_group(proc)
            await _finish(proc, readers)
            data = self._data(out, err, proc.returncode)
            return ToolResult(
                ok=False,
                data=data,
                error=f"timeout: shell command exceeded {limit:g}s",
                stdout=data["stdout"] or None,
                stderr=data["stderr"] or None,
                error_kind="timeout",
            )
        except BaseException:
            _kill_group(proc)
            await _finish(proc, readers)
            raise
        await _finish(proc, readers)
        data = self._data(out, err, proc.returncode)
        stdout, stderr = data["stdout"] or None, data["stderr"] or None
        if proc.returncode != 0:
            last = (data["stderr"] or data["stdout"]).strip().splitlines()
            detail = f": {last[-1]}" if last else ""
            return ToolResult(
                ok=False,
                data=data,
                error=f"shell command exited with code {proc.returncode}{detail}",
                stdout=stdout,
                stderr=stderr,
            )
        return ToolResult(ok=True, data=data, stdout=stdout, stderr=stderr)

    def _data(self, out: bytearray, err: bytearray, code: int | None) -> dict[str, Any]:
        return {
            "stdout": _decoded(out, self._max_output),
            "stderr": _decoded(err, self._max_output),
            "exit_code": code if code is not None else -1,
        }


def _script(config: Mapping[str, Any]) -> str | None:
    cmds = config.get("cmds")
    if isinstance(cmds, list) and cmds:
        return "\n".join(str(c) for c in cmds)
    if isinstance(cmds, str) and cmds.strip():
        return cmds
    command = config.get("command")
    if isinstance(command, list) and command:
        return "\n".join(str(c) for c in command)
    return command if isinstance(command, str) and command.strip() else None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _limit(own: Any, budget: float | None) -> float | None:
    if isinstance(own, int | float) and not isinstance(own, bool) and own > 0:
        return float(own) if budget is None else min(float(own), budget)
    return budget


def _decoded(raw: bytearray, limit: int) -> str:
    text = raw[:limit].decode("utf-8", "replace")
    if len(raw) > limit:
        text += f"\n[output truncated at {limit} bytes]"
    return text


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


async def _collect(stream: asyncio.StreamReader | None, into: bytearray, limit: int) -> None:
    """Read a pipe to its end, keeping one byte past `limit` (to tell that it was cut)."""
    if stream is None:
        return
    while chunk := await stream.read(65536):
        room = limit + 1 - len(into)
        if room > 0:
            into += chunk[:room]


async def _finish(proc: asyncio.subprocess.Process, readers: list[asyncio.Task[None]]) -> None:
    """Wait for the readers; a pipe held open by an escaped grandchild is given up after 1 s."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(proc.wait(), timeout=5.0)
    _done, pending = await asyncio.wait(readers, timeout=1.0)
    for task in pending:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
