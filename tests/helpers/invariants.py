"""The acceptance invariants of a run's event log (dsl.md §18, data-model.md §4.1 and §4.3).

One checker for every e2e run. It reads the log with SQL from the test database: the
`prev_event_id` chain and the `command_id` column are not part of the detail route's event
objects, so SQL is the single source here. When given the events the API returned, it also
checks that the API showed exactly the stored log.

Every violation found is reported together, in one AssertionError.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from tests.helpers.mesh import (
    TERMINAL_EVENTS,
    database,
    events,
    execute,
    execution_database,
    register,
    wait_terminal,
)

ROOT_EVENTS = frozenset({"playbook.initialized", "playbook_started", "playbook.started"})
COMMAND_TERMINAL = frozenset({"command.completed", "command.failed"})


@dataclass(frozen=True)
class FinishedRun:
    """A run that ended and passed `check_run`: its detail, its API events (oldest first), its log."""

    execution_id: str
    detail: dict[str, Any]
    events: list[dict[str, Any]]
    log: list[LoggedEvent]

    @property
    def status(self) -> str:
        status: str = self.detail["status"]
        return status

    @property
    def failures(self) -> list[tuple[str, str | None, str]]:
        """(event_type, node_name, error) of each logged event that carries an error: why it failed."""
        return [(e.event_type, e.node_name, e.error) for e in self.log if e.error]

    def types(self) -> list[tuple[str, str | None]]:
        """(event_type, node_name) in order, heartbeats left out."""
        return [
            (e["event_type"], e["node_name"]) for e in self.events if e["event_type"] != "command.heartbeat"
        ]


async def finish(
    http: httpx.AsyncClient,
    pg_dsn: str,
    execution_id: str,
    *,
    seconds: float = 30.0,
    handled_failures: bool = False,
) -> FinishedRun:
    """Waits for the run to end, reads all its events and checks the invariants: every e2e run's end.

    `handled_failures`: the run may complete although a command failed (see `check_run`).
    """
    detail = await wait_terminal(http, execution_id, seconds)
    found = await events(http, execution_id)
    log = await check_run(pg_dsn, execution_id, found, handled_failures=handled_failures)
    return FinishedRun(execution_id, detail, found, log)


async def run_playbook(
    http: httpx.AsyncClient,
    pg_dsn: str,
    text: str,
    payload: dict[str, Any] | None = None,
    *,
    seconds: float = 30.0,
    handled_failures: bool = False,
) -> FinishedRun:
    """Registers a playbook (YAML text), executes it with `payload` and `finish`es the run."""
    path = (await register(http, text))["path"]
    execution_id = await execute(http, path, payload)
    return await finish(http, pg_dsn, execution_id, seconds=seconds, handled_failures=handled_failures)


@dataclass(frozen=True)
class LoggedEvent:
    """One stored event row, as much of it as the invariants need."""

    event_id: int
    prev_event_id: int | None
    event_type: str
    node_name: str | None
    command_id: int | None
    context: Any
    meta: Any = None
    error: str | None = None
    created_at: datetime | None = None


async def logged_events(pg_dsn: str, execution_id: str | int) -> list[LoggedEvent]:
    """The execution's stored events in `event_id` order, read from its shard's database."""
    async with database(await execution_database(pg_dsn, execution_id)) as conn:
        rows = await conn.fetch(
            "SELECT event_id, prev_event_id, event_type, node_name, command_id, context, meta, error,"
            " created_at FROM noetl.event WHERE execution_id = $1 ORDER BY event_id",
            int(execution_id),
        )
    return [
        LoggedEvent(
            event_id=row["event_id"],
            prev_event_id=row["prev_event_id"],
            event_type=row["event_type"],
            node_name=row["node_name"],
            command_id=row["command_id"],
            context=None if row["context"] is None else json.loads(row["context"]),
            meta=None if row["meta"] is None else json.loads(row["meta"]),
            error=row["error"],
            created_at=row["created_at"],
        )
        for row in rows
    ]


async def check_run(
    pg_dsn: str,
    execution_id: str | int,
    api_events: Sequence[dict[str, Any]] | None = None,
    *,
    self_ended: bool = True,
    handled_failures: bool = False,
) -> list[LoggedEvent]:
    """Asserts the invariants of a finished run and returns its stored log.

    `self_ended` is false for a run ended from outside (cancel, finalize): late worker
    events may then follow the terminal event. `handled_failures` allows a run to complete
    although a command failed (an `on_error` route handled it).

    Raises:
        AssertionError: listing every violated invariant.
    """
    log = await logged_events(pg_dsn, execution_id)
    problems = violations(log, self_ended=self_ended, handled_failures=handled_failures)
    if api_events is not None:
        stored = [e.event_id for e in log]
        shown = sorted(int(e["event_id"]) for e in api_events)
        if shown != stored:
            problems.append(
                f"the API showed {len(shown)} events, the log holds {len(stored)}; "
                f"missing {sorted(set(stored) - set(shown))}, extra {sorted(set(shown) - set(stored))}"
            )
    if problems:
        listing = "\n".join(
            f"  {e.event_id} prev={e.prev_event_id} {e.event_type} {e.node_name}" for e in log
        )
        raise AssertionError(
            f"execution {execution_id} breaks the run invariants:\n- "
            + "\n- ".join(problems)
            + f"\nlog:\n{listing}"
        )
    return log


def violations(
    log: Sequence[LoggedEvent], *, self_ended: bool = True, handled_failures: bool = False
) -> list[str]:
    """The invariants a finished run's log breaks, as messages; empty when it is sound."""
    if not log:
        return ["the execution has no events"]
    problems: list[str] = []
    problems += _root(log)
    problems += _chain(log)
    problems += _terminal(log, self_ended=self_ended, handled_failures=handled_failures)
    problems += _commands(log)
    problems += _loops(log)
    return problems


def _root(log: Sequence[LoggedEvent]) -> list[str]:
    roots = [e for e in log if e.event_type in ROOT_EVENTS]
    if len(roots) != 1:
        return [f"expected exactly one playbook.initialized, found {len(roots)}"]
    problems = []
    if log[0] is not roots[0]:
        problems.append(f"the oldest event is {log[0].event_type}, not playbook.initialized")
    if roots[0].prev_event_id is not None:
        problems.append(f"playbook.initialized has prev_event_id {roots[0].prev_event_id}, not null")
    return problems


def _chain(log: Sequence[LoggedEvent]) -> list[str]:
    """data-model.md §4.3: each event links to the previous event of the execution."""
    return [
        f"{event.event_type} {event.event_id} ({event.node_name}) has prev_event_id "
        f"{event.prev_event_id}, expected {previous.event_id} ({previous.event_type})"
        for previous, event in itertools.pairwise(log)
        if event.prev_event_id != previous.event_id
    ]


def _terminal(log: Sequence[LoggedEvent], *, self_ended: bool, handled_failures: bool) -> list[str]:
    terminals = [e for e in log if e.event_type in TERMINAL_EVENTS]
    if len(terminals) != 1:
        return [f"expected exactly one terminal event, found {[e.event_type for e in terminals]}"]
    terminal = terminals[0]
    problems = []
    if self_ended and log[-1] is not terminal:
        problems.append(f"terminal {terminal.event_type} is followed by {log[-1].event_type}")
    failed_steps = sorted({e.node_name or "" for e in log if e.event_type == "command.failed"})
    if terminal.event_type == "playbook.failed":
        context = terminal.context if isinstance(terminal.context, dict) else {}
        named = context.get("failed_steps")
        if not failed_steps and named is None:
            # Ended by the engine without a failed command (evaluate error, no_next_match, finalize).
            if not isinstance(context.get("error"), str) or not context["error"]:
                problems.append(
                    f"playbook.failed without a failed command states no error: context {context}"
                )
        elif not isinstance(named, list) or not named:
            problems.append(f"playbook.failed does not name its failed steps: context {context}")
        elif not set(named) <= set(failed_steps):
            problems.append(f"playbook.failed names {named}, but only {failed_steps} have command.failed")
    elif terminal.event_type == "playbook.completed" and failed_steps and not handled_failures:
        problems.append(f"playbook.completed although {failed_steps} failed")
    return problems


def _commands(log: Sequence[LoggedEvent]) -> list[str]:
    """Every command.issued has one matching command.completed/failed with its command_id."""
    problems = []
    issued = [e for e in log if e.event_type == "command.issued"]
    for event in issued:
        if event.command_id is None:
            problems.append(f"command.issued {event.event_id} ({event.node_name}) has no command_id")
    issued_ids = {e.command_id for e in issued if e.command_id is not None}
    ends = Counter(e.command_id for e in log if e.event_type in COMMAND_TERMINAL)
    for event in issued:
        if event.command_id is not None and ends[event.command_id] != 1:
            problems.append(
                f"command {event.command_id} ({event.node_name}) has {ends[event.command_id]} "
                "command.completed/command.failed events, expected 1"
            )
    for command_id in ends.keys() - issued_ids:
        problems.append(f"command {command_id} ended without a command.issued")
    return problems


def _loops(log: Sequence[LoggedEvent]) -> list[str]:
    """A loop activation over N items issues at most N distinct commands and writes at most one
    `loop.done`; in a completed run exactly N and exactly one (dsl.md §18)."""
    completed = any(e.event_type == "playbook.completed" for e in log)
    problems = []
    enters = [e for e in log if e.event_type == "step.enter"]
    for index, enter in enumerate(enters):
        expected = enter.context.get("iterations_expected") if isinstance(enter.context, dict) else None
        if not isinstance(expected, int):
            continue
        following = [e.event_id for e in enters[index + 1 :] if e.node_name == enter.node_name]
        until = following[0] if following else None
        activation = [
            e
            for e in log
            if e.node_name == enter.node_name
            and e.event_id > enter.event_id
            and (until is None or e.event_id < until)
        ]
        commands = {e.command_id for e in activation if e.event_type == "command.issued"}
        done = sum(1 for e in activation if e.event_type == "loop.done")
        if len(commands) > expected or done > 1 or (completed and (len(commands), done) != (expected, 1)):
            problems.append(
                f"loop {enter.node_name} over {expected} items (step.enter {enter.event_id}) issued "
                f"{len(commands)} distinct commands and wrote {done} loop.done"
            )
    return problems
