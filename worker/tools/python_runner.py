"""Runs python tool code (dsl §9.3) in a small pool of warm child interpreters.

User code may crash the interpreter, call `os._exit` or `sys.exit`, or loop forever; in a child
process none of that can kill or block the worker or its event loop. Children are long-lived so that
a call costs a pipe round trip rather than an interpreter start-up, and every call still gets a fresh
namespace. A child that times out or dies is killed and replaced. The code that runs inside the
child is `python_child.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.lifecycle import Lifecycle

_CHILD_SCRIPT = Path(__file__).with_name("python_child.py")
_HEADER_BYTES = 4
_START_TIMEOUT_S = 30.0


class PythonRunnerError(RuntimeError):
    """The runner cannot serve calls: a child failed to start, or the runner is not running."""


@dataclass(frozen=True, slots=True)
class PythonOutcome:
    """One call's outcome. `data` is JSON-safe; `error` is set exactly when `ok` is false."""

    ok: bool
    data: Any
    stdout: str
    stderr: str
    error: str | None
    duration_ms: float


class _ChildGone(Exception):
    """The child closed its end of the protocol: it exited or was killed."""


class _Child:
    """One warm interpreter: its process, the protocol pipes, and its two capture files."""

    def __init__(self, proc: asyncio.subprocess.Process, paths: tuple[Path, Path]) -> None:
        if proc.stdin is None or proc.stdout is None:
            raise ValueError("the child's stdin and stdout must be pipes")
        self._proc = proc
        self._requests = proc.stdin
        self._replies = proc.stdout
        self._paths = paths

    @classmethod
    async def start(cls, directory: Path, max_output_bytes: int) -> _Child:
        """Start a child and wait until it is ready to serve.

        Raises:
            PythonRunnerError: the child did not start or did not report ready in time.
        """
        paths = (_new_capture(directory, ".out"), _new_capture(directory, ".err"))
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-P",
                str(_CHILD_SCRIPT),
                *map(str, paths),
                str(max_output_bytes),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                # Its own process group: terminal signals meant for the worker do not reach it, and a
                # kill reaches the subprocesses user code started as well.
                start_new_session=True,
            )
        except OSError as exc:
            _remove(paths)
            raise PythonRunnerError(f"python process failed to start: {exc}") from exc
        child = cls(proc, paths)
        try:
            async with asyncio.timeout(_START_TIMEOUT_S):
                await child._receive()
        except TimeoutError as exc:
            await child.close()
            raise PythonRunnerError(f"python process not ready within {_START_TIMEOUT_S:g}s") from exc
        except _ChildGone as exc:
            status = await child.close()
            raise PythonRunnerError(f"python process failed to start ({_describe_status(status)})") from exc
        except BaseException:
            await child.close()
            raise
        return child

    async def call(self, request: bytes) -> dict[str, Any]:
        """Send one request and return the reply.

        Raises:
            _ChildGone: the child exited before replying.
        """
        try:
            self._requests.write(len(request).to_bytes(_HEADER_BYTES, "big") + request)
            await self._requests.drain()
        except ConnectionError as exc:
            raise _ChildGone from exc
        return await self._receive()

    async def _receive(self) -> dict[str, Any]:
        try:
            header = await self._replies.readexactly(_HEADER_BYTES)
            body = await self._replies.readexactly(int.from_bytes(header, "big"))
            reply: dict[str, Any] = json.loads(body)
        except asyncio.IncompleteReadError as exc:
            raise _ChildGone from exc
        return reply

    def read_output(self, limit: int) -> tuple[str, str]:
        """The captured stdout and stderr of the last call, truncated to `limit` bytes each."""
        # At most limit + 1 bytes of a page-cached file: cheap enough to read on the event loop.
        return _read_capped(self._paths[0], limit), _read_capped(self._paths[1], limit)

    def kill(self) -> None:
        # The group id is certainly still ours only until the child is reaped, so subprocesses of a
        # child that died on its own are left alone rather than risking a recycled id.
        if self._proc.returncode is None:
            with suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    async def stop(self) -> int:
        """Kill the child (and its process group) and return its exit status."""
        self.kill()
        return await self._proc.wait()

    async def close(self) -> int:
        """Kill the child, release its pipes and capture files, and return its exit status."""
        status = await self.stop()
        self._requests.close()
        _remove(self._paths)
        return status


class _Slot:
    """A seat in the pool: the task that starts (or started) the child serving this seat."""

    def __init__(self, directory: Path, max_output_bytes: int) -> None:
        self._directory = directory
        self._max_output_bytes = max_output_bytes
        self._closed = False
        self._child = asyncio.create_task(self._start(None))

    async def child(self) -> _Child:
        """Raises PythonRunnerError when the child could not be started or the pool is shut down."""
        task = self._child
        # Unlike awaiting the task, asyncio.wait does not cancel a start that the next caller will need
        # when this caller is cancelled, and does not pass a shutdown's cancellation off as this caller's.
        await asyncio.wait([task])
        if task.cancelled():
            raise PythonRunnerError("PythonRunner is shut down")
        return task.result()

    def renew(self, broken: _Child | None) -> None:
        """Replace a broken child (or a failed start) with a fresh one, in the background."""
        if self._closed:
            return
        self._child = asyncio.create_task(self._start(broken))

    async def _start(self, broken: _Child | None) -> _Child:
        if broken is not None:
            await broken.close()
        return await _Child.start(self._directory, self._max_output_bytes)

    async def close(self) -> None:
        self._closed = True
        self._child.cancel()
        await asyncio.wait([self._child])
        if not self._child.cancelled() and self._child.exception() is None:
            await self._child.result().close()


class PythonRunner(Lifecycle):
    """A pool of `processes` child interpreters; callers beyond the pool size wait for a free one.

    Use as `async with PythonRunner() as runner:` or call `start()` and `shutdown()`.
    """

    def __init__(self, *, processes: int = 2, max_output_bytes: int = 1_000_000) -> None:
        """Raises ValueError for a pool size under 1 or a negative output limit."""
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        if max_output_bytes < 0:
            raise ValueError(f"max_output_bytes must not be negative, got {max_output_bytes}")
        self._processes = processes
        self._max_output_bytes = max_output_bytes
        self._slots: list[_Slot] = []
        self._idle: asyncio.Queue[_Slot] = asyncio.Queue()
        self._directory: Path | None = None
        self._running = False

    async def start(self) -> None:
        """Start the children and wait until all of them are ready.

        Raises:
            PythonRunnerError: a child failed to start (the others are shut down), or a second start.
        """
        if self._directory is not None:
            raise PythonRunnerError("PythonRunner.start() was already called")
        self._directory = Path(tempfile.mkdtemp(prefix="noetl-python-"))
        self._slots = [_Slot(self._directory, self._max_output_bytes) for _ in range(self._processes)]
        self._running = True
        try:
            await asyncio.gather(*(slot.child() for slot in self._slots))
        except BaseException:
            await self.shutdown()
            raise
        for slot in self._slots:
            self._idle.put_nowait(slot)

    async def run(
        self,
        code: str,
        inputs: dict[str, Any],
        *,
        context: dict[str, Any],
        variables: dict[str, Any] | None = None,
        libs: dict[str, str] | None = None,
        # A parameter rather than the caller's asyncio.timeout: it bounds the execution only, not the
        # wait for a free child, and its expiry is an outcome (dsl §17.4), not an exception.
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> PythonOutcome:
        """Run `code` with the names of dsl §9.3 injected; user-code failures come back as `ok=False`.

        `timeout` (seconds) bounds the execution, not the wait for a free child. When the caller is
        cancelled mid-call, the child is killed and replaced.

        Raises:
            PythonRunnerError: the runner is not running.
        """
        request = json.dumps(
            {
                "code": code,
                "inputs": inputs,
                "context": context,
                "variables": variables if variables is not None else {},
                "libs": libs or {},
            },
            default=str,
        ).encode()
        slot = await self._acquire()
        try:
            return await self._call(slot, request, timeout)
        finally:
            self._idle.put_nowait(slot)

    async def _acquire(self) -> _Slot:
        if not self._running:
            raise PythonRunnerError("PythonRunner is not running")
        slot = await self._idle.get()
        if not self._running:
            # Handed on so that every other waiter wakes up and fails the same way.
            self._idle.put_nowait(slot)
            raise PythonRunnerError("PythonRunner is not running")
        return slot

    async def _call(self, slot: _Slot, request: bytes, limit_s: float | None) -> PythonOutcome:
        started = time.perf_counter()
        try:
            child = await slot.child()
        except PythonRunnerError as exc:
            slot.renew(None)
            return _failure(str(exc), "", "", started)
        try:
            async with asyncio.timeout(limit_s):
                reply = await child.call(request)
        except (TimeoutError, _ChildGone) as exc:
            try:
                status = await child.stop()
                stdout, stderr = child.read_output(self._max_output_bytes)
            finally:
                slot.renew(child)
            if isinstance(exc, TimeoutError):
                error = f"timeout: exceeded {limit_s:g}s"
            else:
                error = f"python process exited unexpectedly ({_describe_status(status)})"
            return _failure(error, stdout, stderr, started)
        except BaseException:
            # Cancelled mid-call: the child is still busy with this code and cannot serve anyone else.
            child.kill()
            slot.renew(child)
            raise
        stdout, stderr = child.read_output(self._max_output_bytes)
        duration_ms = (time.perf_counter() - started) * 1000
        if not reply["ok"]:
            return PythonOutcome(
                ok=False,
                data=None,
                stdout=stdout,
                stderr=stderr,
                error=reply["error"],
                duration_ms=duration_ms,
            )
        data = reply["data"] if reply["returned"] else {"stdout": stdout, "stderr": stderr}
        return PythonOutcome(
            ok=True, data=data, stdout=stdout, stderr=stderr, error=None, duration_ms=duration_ms
        )

    async def shutdown(self) -> None:
        """Kill every child; calls in flight come back as failures. Idempotent."""
        self._running = False
        slots, self._slots = self._slots, []
        await asyncio.gather(*(slot.close() for slot in slots))
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)


def _failure(error: str, stdout: str, stderr: str, started: float) -> PythonOutcome:
    duration_ms = (time.perf_counter() - started) * 1000
    return PythonOutcome(
        ok=False, data=None, stdout=stdout, stderr=stderr, error=error, duration_ms=duration_ms
    )


def _describe_status(status: int) -> str:
    if status < 0:
        with suppress(ValueError):
            return f"killed by {signal.Signals(-status).name}"
        return f"killed by signal {-status}"
    return f"exit code {status}"


def _new_capture(directory: Path, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(dir=directory, suffix=suffix)
    os.close(fd)
    return Path(name)


def _read_capped(path: Path, limit: int) -> str:
    try:
        with path.open("rb") as capture:
            raw = capture.read(limit + 1)
    except FileNotFoundError:
        # Removed by a concurrent shutdown.
        return ""
    text = raw[:limit].decode("utf-8", "replace")
    if len(raw) > limit:
        text += f"\n[output truncated at {limit} bytes]"
    return text


def _remove(paths: Iterable[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
