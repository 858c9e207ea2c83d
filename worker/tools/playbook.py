"""The `playbook` tool: a sub-playbook run as a child execution (dsl.md §14, fixtures C7).

1. `ExecutionService.Start` with the catalog `path` (or `catalog_id`, `version`), the rendered
   `input` (alias `args`, or `payload`) as the child's workload, `parent_execution_id` = this
   execution and the parent's trace. A refused start is a tool error.
2. Without `return_step` (or `return_result: true`) the tool returns at once:
   `{"status": "started", "execution_id": "<child>", "path": <path>, "async": true}`.
3. With it, the tool follows the child's event stream (`EventService.Subscribe`) until its terminal
   event. Its data is the user data of the child's `call.done` of `return_step` (else of the
   child's newest `call.done`). A failed or cancelled child, or the wait's timeout (`timeout`,
   default 300 s, capped by the command's budget), is a tool error
   `child playbook <path> (<id>): <error>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from noetl.v1 import events_pb2, events_pb2_grpc, execution_pb2, execution_pb2_grpc

from kernel import jsonutil
from kernel.errors import MeshError, NotFound
from kernel.grpc_client import Sharded
from language.event_types import TERMINAL_STATUS, canonical_event_type
from language.result_refs import result_reference
from language.statuses import CANCELLED, COMPLETED, FAILED
from worker.results import ResultOffload
from worker.tools.base import ToolCall, ToolResult

log = logging.getLogger(__name__)

DEFAULT_WAIT_SECONDS = 300.0
START_TIMEOUT_SECONDS = 60.0
_RESUBSCRIBE_DELAY_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class _Stored:
    """A child step result kept in the result store; read back only if it is the one returned."""

    ref: str


@dataclass
class _Child:
    """What the parent learns from the child's events."""

    execution_id: int
    label: str
    # The status the child's terminal event names (COMPLETED, FAILED or CANCELLED).
    terminal: str | None = None
    error: str | None = None
    cursor: int | None = None
    results: dict[str, Any] | None = None
    newest: Any = None
    has_result: bool = False
    failure: str | None = None  # the first failed command's step and error


class PlaybookTool:
    def __init__(
        self,
        executions: Sharded[execution_pb2_grpc.ExecutionServiceStub],
        events: Sharded[events_pb2_grpc.EventServiceStub],
        results: ResultOffload,
    ) -> None:
        self._executions = executions
        self._events = events
        self._results = results

    async def run(self, call: ToolCall) -> ToolResult:
        config = call.config
        path = config.get("path")
        catalog_id = config.get("catalog_id")
        if not (isinstance(path, str) and path) and not catalog_id:
            return ToolResult(ok=False, data=None, error="playbook tool needs 'path' or 'catalog_id'")
        label = path if isinstance(path, str) and path else f"catalog_id {catalog_id}"
        try:
            child_id = await self._start(call, path, catalog_id)
        except (MeshError, ValueError) as exc:
            detail = exc.detail if isinstance(exc, MeshError) else str(exc)
            return ToolResult(ok=False, data=None, error=f"child playbook {label}: start failed: {detail}")
        return_step = _return_step(config)
        if return_step is None:
            return ToolResult(
                ok=True,
                data={"status": "started", "execution_id": str(child_id), "path": label, "async": True},
            )
        child = _Child(child_id, label, results={})
        wait = _wait_seconds(config.get("timeout"), call.timeout)
        try:
            async with asyncio.timeout(wait):
                await self._follow(child)
        except TimeoutError:
            return ToolResult(
                ok=False,
                data=None,
                error=f"timeout: child playbook {label} ({child_id}) did not finish within {wait:g}s",
                error_kind="timeout",
            )
        outcome = _outcome(child, return_step or None)
        if isinstance(outcome.data, _Stored):
            return await self._read_back(outcome.data, label)
        return outcome

    async def _read_back(self, stored: _Stored, label: str) -> ToolResult:
        """The child's externalised step result, as the data itself: the parent's own result goes
        through the same inline budget again when it is reported."""
        try:
            return ToolResult(ok=True, data=await self._results.read(stored.ref))
        except MeshError as exc:
            return ToolResult(
                ok=False,
                data=None,
                error=f"child playbook {label}: result {stored.ref} unreadable: {exc.detail}",
            )

    async def _start(self, call: ToolCall, path: Any, catalog_id: Any) -> int:
        """Raises MeshError: the execution service refused; ValueError: a malformed catalog_id or version."""
        request = execution_pb2.StartRequest(
            workload_json=jsonutil.dumps(_payload(call)),
            parent_execution_id=call.execution_id,
        )
        if isinstance(path, str) and path:
            request.path = path
        else:
            request.catalog_id = int(catalog_id)
        version = call.config.get("version")
        if version not in (None, "", "latest"):
            request.version = int(version)
        if call.trace is not None:
            request.trace_json = jsonutil.dumps(call.trace)
        answer = await self._executions.for_new_execution().Start(request, timeout=START_TIMEOUT_SECONDS)
        log.info("step %s started child execution %s (%s)", call.step, answer.execution_id, path)
        return int(answer.execution_id)

    async def _follow(self, child: _Child) -> None:
        """Read the child's events until its terminal one; a broken stream is resumed at the cursor."""
        while child.terminal is None:
            request = events_pb2.SubscribeRequest(execution_id=child.execution_id)
            if child.cursor is not None:
                request.after_event_id = child.cursor
            stream = self._events.for_execution(child.execution_id).Subscribe(request)
            try:
                async for message in stream:
                    _observe(child, message.event)
                    if child.terminal is not None:
                        break
            except NotFound:
                pass  # its first event is not visible yet
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
                    raise
            except MeshError as exc:
                log.warning("following child %s: %s; resubscribing", child.execution_id, exc.detail)
            finally:
                with contextlib.suppress(Exception):
                    stream.cancel()
            if child.terminal is None:
                await asyncio.sleep(_RESUBSCRIBE_DELAY_SECONDS)


def _observe(child: _Child, event: Any) -> None:
    child.cursor = event.event_id
    kind = event.event_type
    if kind == "command.failed" and child.failure is None:
        payload = jsonutil.loads(event.context_json)
        error = event.error if event.HasField("error") and event.error else None
        if error is None and isinstance(payload, Mapping) and payload.get("error"):
            error = str(payload["error"])
        child.failure = f"step '{event.node_name}' failed: {error or 'unknown error'}"
    elif kind == "call.done":
        stored = jsonutil.loads(event.result_json)
        reference = result_reference(stored.get("context") if isinstance(stored, Mapping) else None)
        data = _Stored(reference["ref"]) if reference is not None else _user_data(stored)
        child.newest = data
        child.has_result = True
        if child.results is not None:
            child.results[event.node_name] = data
    elif (status := TERMINAL_STATUS.get(canonical_event_type(kind))) is not None:
        child.terminal = status
        if status != COMPLETED:
            child.error = event.error if event.HasField("error") and event.error else None
            if child.error is None:
                context = jsonutil.loads(event.context_json)
                if isinstance(context, Mapping) and context.get("error"):
                    child.error = str(context["error"])


def _outcome(child: _Child, return_step: str | None) -> ToolResult:
    prefix = f"child playbook {child.label} ({child.execution_id})"
    if child.terminal == CANCELLED:
        return ToolResult(ok=False, data=None, error=f"{prefix}: cancelled")
    if child.terminal == FAILED:
        return ToolResult(ok=False, data=None, error=f"{prefix}: {child.failure or child.error or 'failed'}")
    results = child.results or {}
    if return_step is not None and return_step in results:
        return ToolResult(ok=True, data=results[return_step])
    if child.has_result:
        return ToolResult(ok=True, data=child.newest)
    return ToolResult(ok=True, data={"status": "completed", "execution_id": str(child.execution_id)})


def _user_data(result: Any) -> Any:
    """`context.result.context.data` of a stored `call.done` result (dsl.md §11.1)."""
    context = result.get("context") if isinstance(result, Mapping) else None
    if not isinstance(context, Mapping):
        return result
    inner = context.get("result")
    inner_context = inner.get("context") if isinstance(inner, Mapping) else None
    if isinstance(inner_context, Mapping) and "data" in inner_context:
        return inner_context["data"]
    return context.get("data", context)


def _payload(call: ToolCall) -> dict[str, Any]:
    """The child's workload: `payload`, else the rendered `input` (alias `args`)."""
    for key in ("payload", "input", "args"):
        value = call.config.get(key)
        if isinstance(value, Mapping):
            return dict(value)
    return dict(call.input)


def _return_step(config: Mapping[str, Any]) -> str | None:
    """The child step whose result to return; "" = wait and return the newest; None = do not wait."""
    step = config.get("return_step")
    if isinstance(step, str) and step.strip():
        return step.strip()
    if config.get("return_result") is True:
        named = config.get("result_step")
        return named.strip() if isinstance(named, str) and named.strip() else ""
    return None


def _wait_seconds(own: Any, budget: float | None) -> float:
    seconds = (
        float(own)
        if isinstance(own, int | float) and not isinstance(own, bool) and own > 0
        else DEFAULT_WAIT_SECONDS
    )
    return seconds if budget is None else min(seconds, budget)
