"""A run's progress in the terminal: events folded into steps, drawn as a live table on a TTY or
as plain lines otherwise, and summed up as one JSON document (`--json`).

Shared by `noetl-mesh run` and `noetl-mesh show`. Times come from the events' own timestamps,
so a finished run shown later has the durations it had when it ran.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from noetl.v1 import events_pb2, events_pb2_grpc
from rich.console import Console
from rich.live import Live
from rich.table import Table

from kernel import jsonutil
from kernel.grpc_client import ClientAuth
from kernel.wire import optional
from language.event_types import TERMINAL_STATUS, WRITTEN_TERMINAL
from language.result_refs import result_reference
from language.statuses import COMPLETED, RUNNING
from noetl_mesh.credentials import launcher_auth
from noetl_mesh.state import StackInfo

ICONS = {"queued": "·", "running": "▶", "done": "✓", "failed": "✗", "skipped": "↷"}
COLOURS = {"queued": "dim", "running": "cyan", "done": "green", "failed": "red", "skipped": "dim"}
_STATES = {
    "command.issued": "queued",
    "command.claimed": "running",
    "command.started": "running",
    "command.completed": "done",
    "step.exit": "done",
    "call.error": "failed",
    "command.failed": "failed",
    "step.skipped": "skipped",
    "loop.done": "done",
}
STDERR_TAIL_LINES = 20


@dataclass(frozen=True, slots=True)
class Event:
    """What the terminal reads of an event (from `EventService.Subscribe`)."""

    event_type: str
    node_name: str
    created_at: datetime
    context: Any
    result: Any
    error: str | None
    command_id: int | None
    iteration: int | None


@dataclass(slots=True)
class StepView:
    name: str
    state: str = "queued"
    started: datetime | None = None
    finished: datetime | None = None
    error: str | None = None
    result: Any = None
    stdout: str | None = None
    stderr: str | None = None
    expected: int | None = None  # a loop's iteration count
    iterations: dict[int, Any] = field(default_factory=dict)  # a loop's results by index
    reference: str | None = None  # the result was kept in the result store (dsl.md §9.12)

    @property
    def loop(self) -> bool:
        return self.expected is not None

    def elapsed_ms(self, now: datetime) -> float | None:
        if self.started is None:
            return None
        return max(0.0, ((self.finished or now) - self.started).total_seconds() * 1000)

    def elapsed(self, now: datetime) -> str:
        took = self.elapsed_ms(now)
        return "" if took is None else f"{took:.0f} ms"

    def count(self) -> str:
        if not self.loop:
            return ""
        return f"{len(self.iterations)}/{self.expected}"


@dataclass(slots=True)
class Progress:
    steps: dict[str, StepView] = field(default_factory=dict)
    status: str = RUNNING
    error: str | None = None
    started: datetime | None = None
    ended: datetime | None = None
    last_step: str | None = None  # the step whose result came last: what `run` prints
    _iterations: dict[int, int] = field(default_factory=dict)  # command id → loop index

    def apply(self, event: Event) -> str | None:
        """Folds one event; returns the step whose state changed, if any."""
        kind = event.event_type
        self.started = self.started or event.created_at
        if kind in WRITTEN_TERMINAL:
            self.status = TERMINAL_STATUS[kind]
            self.error = event.error or _context_error(event.context)
            self.ended = event.created_at
            return None
        if (
            kind == "step.enter"
            and isinstance(event.context, dict)
            and "iterations_expected" in event.context
        ):
            view = self.steps.setdefault(event.node_name, StepView(event.node_name))
            view.expected = int(event.context["iterations_expected"])
        if kind == "command.issued" and event.command_id is not None and event.iteration is not None:
            self._iterations[event.command_id] = event.iteration
        if kind in ("call.done", "call.error", "step.exit"):
            self._output(self.steps.setdefault(event.node_name, StepView(event.node_name)), event)
        state = _STATES.get(kind)
        if state is None:
            return None
        view = self.steps.setdefault(event.node_name, StepView(event.node_name))
        if view.loop and kind in ("command.completed", "step.exit", "command.issued", "command.claimed"):
            state = "running"  # an iteration finished; the loop is done at loop.done
        if state == "queued" and view.state in ("done", "failed"):
            view.started = view.finished = None  # re-entered step (a workflow-arc loop)
            view.error = None
        if state in ("queued", "running") and view.started is None:
            view.started = event.created_at
        if state in ("done", "failed", "skipped"):
            view.finished = event.created_at
        if state == "failed":
            view.error = view.error or event.error or _context_error(event.context)
        if view.state == "failed" and state == "done":
            return None  # a command.completed after call.error does not undo the failure
        changed = view.state != state
        view.state = state
        return event.node_name if changed else None

    def _output(self, view: StepView, event: Event) -> None:
        """The tool's data, stdout and stderr from a `call.done`/`call.error`/`step.exit` payload."""
        context = event.context if isinstance(event.context, dict) else {}
        envelope = context.get("result")
        inner = envelope.get("context") if isinstance(envelope, dict) else None
        inner = inner if isinstance(inner, dict) else {}
        reference = result_reference(context)
        if not inner and reference is None:
            return
        view.stdout = inner.get("stdout") or view.stdout
        view.stderr = inner.get("stderr") or view.stderr
        if event.event_type == "call.error":
            view.error = str(inner.get("error") or context.get("error") or "error")
            return
        data = {"$ref": reference["ref"]} if reference is not None else inner.get("data")
        index = self._iterations.get(event.command_id) if event.command_id is not None else None
        if view.loop and index is not None:
            view.iterations[index] = data
        else:
            view.result = data
            view.reference = None if reference is None else reference["ref"]
        self.last_step = view.name

    def table(self) -> Table:
        now = _now()
        table = Table(show_header=True, header_style="bold", box=None)
        for title, justify in (
            ("", "left"),
            ("step", "left"),
            ("state", "left"),
            ("loop", "right"),
            ("time", "right"),
        ):
            table.add_column(title, justify=justify)  # type: ignore[arg-type]
        for view in self.steps.values():
            colour = COLOURS[view.state]
            table.add_row(
                f"[{colour}]{ICONS[view.state]}[/{colour}]",
                view.name,
                f"[{colour}]{view.state}[/{colour}]",
                view.count(),
                view.elapsed(now),
            )
        return table

    def line(self, name: str) -> str:
        """The plain-text line of a step whose state changed."""
        view = self.steps[name]
        took = view.elapsed(_now()) if view.state in ("done", "failed") else ""
        count = f" {view.count()}" if view.loop and view.state in ("done", "failed") else ""
        return f"{ICONS[view.state]} {view.name} {view.state}{count} {took}".rstrip()

    def failures(self, console: Console) -> None:
        """Each failed step's error and the tail of its stderr."""
        for view in self.steps.values():
            if view.state != "failed":
                continue
            console.print(f"[red]✗ {view.name}[/red]: {view.error or 'failed'}", markup=True, highlight=False)
            if view.stderr:
                tail = view.stderr.rstrip("\n").splitlines()[-STDERR_TAIL_LINES:]
                console.print(f"--- stderr of {view.name} (last {len(tail)} lines) ---", highlight=False)
                console.print("\n".join(tail), markup=False, highlight=False)

    def document(self, execution_id: int, path: str, version: int) -> dict[str, Any]:
        """The `--json` answer: the run, and each step with its result (a loop's: one per iteration)."""
        now = _now()
        duration = None if self.started is None else ((self.ended or now) - self.started).total_seconds()
        return {
            "execution_id": str(execution_id),
            "path": path,
            "version": version,
            "status": self.status,
            "duration_seconds": None if duration is None else round(duration, 3),
            "error": self.error,
            "steps": [_step_document(view, now) for view in self.steps.values()],
        }


def _step_document(view: StepView, now: datetime) -> dict[str, Any]:
    took = view.elapsed_ms(now)
    step: dict[str, Any] = {
        "step": view.name,
        "state": view.state,
        "duration_ms": None if took is None else round(took, 1),
        "result": [view.iterations[i] for i in sorted(view.iterations)] if view.loop else view.result,
        "error": view.error,
    }
    if view.loop:
        step["iterations"] = view.expected
    if view.stdout:
        step["stdout"] = view.stdout
    if view.stderr:
        step["stderr"] = view.stderr
    return step


def _context_error(context: Any) -> str | None:
    if isinstance(context, dict) and context.get("error"):
        return str(context["error"])
    return None


def _now() -> datetime:
    return datetime.now(tz=UTC)


async def follow(events_addr: str, execution_id: int, auth: ClientAuth) -> AsyncIterator[Event]:
    """The execution's events from the event service's live stream, in order, until the end."""
    async with auth.open(events_addr) as channel:
        stub = events_pb2_grpc.EventServiceStub(channel)
        async for item in stub.Subscribe(events_pb2.SubscribeRequest(execution_id=execution_id)):
            event = item.event
            meta = jsonutil.loads(event.meta_json) if event.event_type == "command.issued" else None
            context = jsonutil.loads(event.context_json)
            command_id = optional(event, "command_id")
            if command_id is None and isinstance(meta, dict) and meta.get("command_id") is not None:
                command_id = int(meta["command_id"])
            if command_id is None and isinstance(context, dict) and context.get("command_id") is not None:
                command_id = int(context["command_id"])
            index = meta.get("iteration_index") if isinstance(meta, dict) else None
            yield Event(
                event_type=event.event_type,
                node_name=event.node_name,
                created_at=event.created_at.ToDatetime(tzinfo=UTC),
                context=context,
                result=jsonutil.loads(event.result_json),
                error=optional(event, "error"),
                command_id=command_id,
                iteration=index if isinstance(index, int) else None,
            )


async def watch(
    console: Console,
    info: StackInfo,
    execution_id: int,
    progress: Progress,
    *,
    quiet: bool = False,
    limit: int | None = None,
) -> None:
    """Folds the execution's events into `progress` until its terminal event (or `limit` events),
    drawing a live table on a terminal and a line per step change otherwise; `quiet` draws nothing."""
    seen = 0
    live = (
        Live(progress.table(), console=console, refresh_per_second=10)
        if console.is_terminal and not quiet
        else None
    )
    with live or contextlib.nullcontext():
        if limit == 0:
            return
        events = follow(info.events_addr_for(execution_id), execution_id, launcher_auth(info.run_dir))
        async for event in events:
            changed = progress.apply(event)
            seen += 1
            if live is not None:
                live.update(progress.table())
            elif changed is not None and not quiet:
                console.print(progress.line(changed), markup=False, highlight=False)
                error = progress.steps[changed].error
                if progress.steps[changed].state == "failed" and error:
                    console.print(f"  {error}", markup=False, highlight=False)
            if limit is not None and seen >= limit:
                return


def report(console: Console, progress: Progress) -> None:
    """The closing lines: the status and duration, the run's error, each failed step's stderr tail."""
    colour = "green" if progress.status == COMPLETED else "yellow" if progress.status == RUNNING else "red"
    took = ""
    if progress.started is not None:
        took = f" in {((progress.ended or _now()) - progress.started).total_seconds():.2f}s"
    console.print(f"[{colour}]{progress.status}[/{colour}]{took}", highlight=False)
    if progress.error:
        console.print(f"error: {progress.error}", markup=False, highlight=False)
    progress.failures(console)
