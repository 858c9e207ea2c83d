"""Runs one command: claim → run the tool → stream the lifecycle events (dsl.md §16)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import grpc
from noetl.v1 import events_pb2, events_pb2_grpc, execution_pb2, execution_pb2_grpc

from kernel import jsonutil
from kernel.errors import Conflict, MeshError, NotFound
from kernel.grpc_client import Sharded
from kernel.rpc_errors import from_rpc_error
from language.templating import restore_views
from worker.credentials import CommandSecrets, SecretsClient
from worker.pipeline import ToolRunner, tool_config
from worker.results import ResultOffload
from worker.tools.base import Tool, ToolCall, ToolResult

log = logging.getLogger(__name__)

DEFAULT_MAX_RESULT_BYTES = 16 * 1024 * 1024
# How often a running command asks whether its execution was cancelled (dsl.md §13).
DEFAULT_CANCEL_CHECK_SECONDS = 10.0
CANCELLED = "cancelled"


class Outcome:
    """What the consumer should do with the notification."""

    DONE = "done"  # ran it, or it is not ours to run: acknowledge
    RETRY = "retry"  # transient trouble: redeliver later


@dataclass(frozen=True, slots=True)
class Notification:
    execution_id: int
    event_id: int
    command_id: int
    step: str


class Executor:
    def __init__(
        self,
        *,
        worker_id: str,
        commands: Sharded[execution_pb2_grpc.CommandServiceStub],
        events: Sharded[events_pb2_grpc.EventServiceStub],
        tools: dict[str, Tool],
        default_timeout: float,
        heartbeat_seconds: float,
        server_url: str,
        executions: Sharded[execution_pb2_grpc.ExecutionServiceStub] | None = None,
        cancel_check_seconds: float = DEFAULT_CANCEL_CHECK_SECONDS,
        secrets: SecretsClient | None = None,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        offload: ResultOffload | None = None,
    ) -> None:
        self._worker_id = worker_id
        self._commands = commands
        self._events = events
        # None: a running tool is never stopped for its execution's cancellation.
        self._executions = executions
        self._cancel_check = cancel_check_seconds
        self._runner = ToolRunner(tools)
        self._default_timeout = default_timeout
        self._heartbeat = heartbeat_seconds
        self._server_url = server_url
        self._secrets = secrets
        self._max_result_bytes = max_result_bytes
        # None: every result travels inline, up to `max_result_bytes`.
        self._offload = offload

    async def handle(self, note: Notification) -> str:
        try:
            claim = await self._commands.for_execution(note.execution_id).Claim(
                # start=True: the claim also records command.started, saving a round trip.
                execution_pb2.ClaimRequest(
                    event_id=note.event_id,
                    execution_id=note.execution_id,
                    worker_id=self._worker_id,
                    start=True,
                    command_id=note.command_id,
                ),
                timeout=30,
            )
        except (Conflict, NotFound) as exc:
            log.info("command %s not claimed: %s", note.command_id, exc.detail)
            return Outcome.DONE
        except MeshError as exc:
            log.warning("claim of command %s failed, will retry: %s", note.command_id, exc.detail)
            return Outcome.RETRY
        await self._run(claim.command)
        return Outcome.DONE

    async def _run(self, command: Any) -> None:
        context = jsonutil.loads(command.context_json) or {}
        meta = jsonutil.loads(command.meta_json) if command.meta_json else None
        call = ToolCall(
            execution_id=command.execution_id,
            command_id=command.command_id,
            step=command.step,
            kind=command.tool_kind,
            config=tool_config(context.get("tool_config")),
            input=context.get("input") or {},
            render_context=restore_views(context.get("render_context") or {}),
            timeout=_timeout(context.get("spec"), context.get("tool_config"), self._default_timeout),
            server_url=self._server_url,
            secrets=CommandSecrets(self._secrets, command.execution_id),
            trace=meta.get("trace") if isinstance(meta, dict) else None,
        )
        stream = _EventStream(self._events.for_execution(command.execution_id), call, self._worker_id)
        tool = asyncio.ensure_future(self._execute(call))
        company = [
            asyncio.ensure_future(self._heartbeats(stream)),
            cancelled := asyncio.ensure_future(self._until_cancelled(call.execution_id)),
        ]
        started = time.perf_counter()
        try:
            await asyncio.wait((tool, cancelled), return_when=asyncio.FIRST_COMPLETED)
            if tool.done():
                result = tool.result()
            else:
                # The execution was cancelled: the tool is stopped (a python child or a shell's
                # process group is killed) and the command reported failed, as dsl.md §13 says.
                log.info(
                    "command %s: execution %s cancelled, tool stopped", call.command_id, call.execution_id
                )
                result = ToolResult(ok=False, data=None, error=CANCELLED)
        except asyncio.CancelledError:
            # Handed back (worker shutdown): no closing events; the claim lease runs out instead.
            stream.abort()
            raise
        finally:
            for task in (tool, *company):
                task.cancel()
            await asyncio.gather(tool, *company, return_exceptions=True)
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        result = _bounded(result, self._max_result_bytes)
        reference = None
        if self._offload is not None and result.ok:
            reference = await self._offload.reference(call, result.data)
        closing = _closing_events(call, result, duration_ms, reference)
        await stream.send([(kind, call.secrets.redact(payload)) for kind, payload in closing])
        await stream.close()

    async def _execute(self, call: ToolCall) -> ToolResult:
        try:
            return await self._runner.run(call)
        except Exception as exc:
            log.error(
                "command %s of step %s crashed: %s", call.command_id, call.step, call.secrets.crash_text(exc)
            )
            return ToolResult(ok=False, data=None, error=f"{type(exc).__name__}: {exc}")

    async def _until_cancelled(self, execution_id: int) -> None:
        """Returns once the execution is cancelled, and only then: a check that fails for any
        reason is made again next time (ending here would stop the tool)."""
        if self._executions is None:
            await asyncio.Event().wait()
        while self._executions is not None:
            await asyncio.sleep(self._cancel_check)
            try:
                check = await self._executions.for_execution(execution_id).CancellationCheck(
                    execution_pb2.CancellationCheckRequest(execution_id=execution_id, from_projection=True),
                    timeout=10,
                )
            except Exception as exc:
                log.debug("cancellation check of execution %s failed: %s", execution_id, exc)
                continue
            if check.cancelled:
                return

    async def _heartbeats(self, stream: _EventStream) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            await stream.send([("command.heartbeat", {"command_id": stream.call.command_id})])


def _timeout(spec: Any, config: Any, default: float) -> float:
    for source in (spec, config):
        if isinstance(source, dict):
            value = source.get("timeout")
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                return float(value)
    return default


def _bounded(result: ToolResult, limit: int) -> ToolResult:
    """The result, or a failure saying it is too large to report (dsl.md §9.12)."""
    if result.data is None:
        return result
    try:
        size = len(jsonutil.dumps(result.data))
    except TypeError as exc:
        return replace(result, ok=False, data=None, error=f"result is not JSON-serialisable: {exc}")
    if size <= limit:
        return result
    return ToolResult(
        ok=False,
        data=None,
        error=(
            f"result too large: the step's result data is {size} bytes, over this worker's limit "
            f"of {limit} bytes (NOETL_WORKER_MAX_RESULT_BYTES)"
        ),
        stdout=result.stdout,
        stderr=result.stderr,
    )


def _closing_events(
    call: ToolCall, result: ToolResult, duration_ms: float, reference: dict[str, Any] | None
) -> list[tuple[str, dict[str, Any]]]:
    """With a `reference`, the data stays in the result store: the envelope carries the reference
    and a context with the run's own details (status, duration, output) only."""
    if result.ok:
        context: dict[str, Any] = {"data": result.data, "status": "success", "duration_ms": duration_ms}
        if result.stdout:
            context["stdout"] = result.stdout
        if result.stderr:
            context["stderr"] = result.stderr
        envelope: dict[str, Any] = {"status": "success", "context": context}
        if reference is not None:
            del context["data"]
            envelope = {"status": "success", "reference": reference, "context": context}
        return [
            ("call.done", {"command_id": call.command_id, "call_index": 0, "result": envelope}),
            ("step.exit", {"command_id": call.command_id, "status": "COMPLETED", "result": envelope}),
            ("command.completed", {"command_id": call.command_id, "status": "success"}),
        ]
    error = result.error or "tool failed"
    failure: dict[str, Any] = {"command_id": call.command_id, "call_index": 0, "error": error}
    if result.stdout or result.stderr:
        failure["result"] = {
            "status": "error",
            "context": {
                "error": error,
                "stdout": result.stdout,
                "stderr": result.stderr,
                "duration_ms": duration_ms,
            },
        }
    return [("call.error", failure), ("command.failed", {"command_id": call.command_id, "error": error})]


class _EventStream:
    """One client-streaming StreamEmit call per command; each message is one transaction.

    Messages are fed through a queue-backed request iterator rather than `write()`: the
    telemetry client interceptors only support the iterator form for streaming calls.
    """

    def __init__(self, stub: events_pb2_grpc.EventServiceStub, call: ToolCall, worker_id: str) -> None:
        self.call = call
        self._worker_id = worker_id
        self._queue: asyncio.Queue[events_pb2.StreamEmitRequest | None] = asyncio.Queue()
        self._rpc = stub.StreamEmit(self._requests(), timeout=None)

    async def _requests(self) -> AsyncIterator[events_pb2.StreamEmitRequest]:
        while (batch := await self._queue.get()) is not None:
            yield batch

    async def send(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        self._queue.put_nowait(
            events_pb2.StreamEmitRequest(
                events=[
                    events_pb2.WorkerEvent(
                        execution_id=self.call.execution_id,
                        step=self.call.step,
                        event_type=kind,
                        payload_json=jsonutil.dumps(payload),
                        meta_json=jsonutil.dumps({"command_id": self.call.command_id}),
                        worker_id=self._worker_id,
                        actionable=True,
                        informative=True,
                    )
                    for kind, payload in events
                ]
            )
        )

    def abort(self) -> None:
        """Gives the stream up: what was already sent is stored, nothing more is."""
        self._rpc.cancel()

    async def close(self) -> None:
        """Ends the stream and waits until every event is stored.

        Raises:
            MeshError: the event service rejected or lost the stream.
        """
        self._queue.put_nowait(None)
        try:
            await self._rpc
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
