"""Reading a finished run's stored log (`FinishedRun.log`): what e2e tests assert about it.

Everything here takes the rows `tests/helpers/invariants.py` read with SQL, in `event_id`
order, so `meta` (iteration indexes, reasons, reclaims) and `command_id` are at hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tests.helpers.invariants import FinishedRun, LoggedEvent

COMMAND_ENDS = frozenset({"command.completed", "command.failed"})


def of(log: Sequence[LoggedEvent], event_type: str, step: str | None = None) -> list[LoggedEvent]:
    """The events of one type (of one step, when given), oldest first."""
    return [e for e in log if e.event_type == event_type and (step is None or e.node_name == step)]


def one(log: Sequence[LoggedEvent], event_type: str, step: str | None = None) -> LoggedEvent:
    """The single event of a type (and step); fails when there are none or several."""
    found = of(log, event_type, step)
    assert len(found) == 1, f"expected one {event_type} {step or ''}, found {len(found)}"
    return found[0]


def position(log: Sequence[LoggedEvent], event: LoggedEvent) -> int:
    return next(i for i, e in enumerate(log) if e.event_id == event.event_id)


def server_types(run: FinishedRun) -> list[tuple[str, str | None]]:
    """(event_type, node_name) of the run without heartbeats: `FinishedRun.types` of the log."""
    return [(e.event_type, e.node_name) for e in run.log if e.event_type != "command.heartbeat"]


def entered(log: Sequence[LoggedEvent], step: str) -> int:
    return len(of(log, "step.enter", step))


def commands(log: Sequence[LoggedEvent], step: str) -> list[int]:
    """Command ids issued for `step`, in issue order."""
    return [e.command_id for e in of(log, "command.issued", step) if e.command_id is not None]


def meta(event: LoggedEvent) -> dict[str, Any]:
    return event.meta if isinstance(event.meta, dict) else {}


def in_flight_series(log: Sequence[LoggedEvent], step: str) -> list[int]:
    """How many commands of `step` were issued and not yet completed or failed, after each of its
    `command.issued` events: the load an orchestrator's dispatch put on the workers."""
    open_ids: set[int] = set()
    series = []
    for event in log:
        if event.node_name != step or event.command_id is None:
            continue
        if event.event_type == "command.issued":
            open_ids.add(event.command_id)
            series.append(len(open_ids))
        elif event.event_type in COMMAND_ENDS:
            open_ids.discard(event.command_id)
    return series


def issued_after(log: Sequence[LoggedEvent], event: LoggedEvent) -> list[LoggedEvent]:
    """What was dispatched (`step.enter`, `command.issued`) after `event`."""
    return [
        e for e in log if e.event_id > event.event_id and e.event_type in ("step.enter", "command.issued")
    ]


def terminal_context(run: FinishedRun) -> dict[str, Any]:
    ends = [e for e in run.log if e.event_type in ("playbook.completed", "playbook.failed")]
    assert len(ends) == 1, [e.event_type for e in ends]
    context = ends[0].context
    assert isinstance(context, dict), context
    return context
