"""The cost of one engine pass along a long sequential loop, in this process (no mesh, no I/O).

The execution service folds each new event into a cached `ExecutionState` and runs one pass
(`evaluate.advance`) per command completion. Here the same fold and pass run against an in-memory
log: a simulated worker answers each iteration command with the events the real worker writes,
and every pass is timed. If a pass re-read or re-folded the log, its time would grow with the
iteration index; the figures compare passes near the start and near the end of the loop.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from bench.stats import percentile
from services.execution.engine.dsl import parse_playbook
from services.execution.engine.evaluate import advance, needs_follow_up, start
from services.execution.engine.model import Playbook
from services.execution.engine.records import Decision, EventRecord, NewCommand
from services.execution.engine.state import ExecutionState

EXECUTION_ID = 1 << 40
CATALOG_ID = 1 << 41


def sequential_loop(iterations: int, *, kind: str = "noop") -> str:
    """start → walk (a sequential loop of `iterations` `kind` commands) → end."""
    return f"""\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: seq_loop_{iterations}, path: bench/seq_loop_{iterations}}}
workload: {{n: {iterations}}}
workflow:
  - step: start
    tool: {{kind: noop}}
    next: walk
  - step: walk
    loop: {{in: "{{{{ n }}}}", iterator: i, spec: {{mode: sequential}}}}
    tool: {{kind: {kind}}}
    next:
      arcs:
        - {{step: end, when: '{{{{ event.name == "loop.done" }}}}'}}
  - step: end
    tool: {{kind: noop}}
"""


@dataclass
class PassTimes:
    iterations: int
    repeats: int
    # Per iteration index: the time of the pass its completion triggered, one value per repeat.
    seconds: dict[int, list[float]] = field(default_factory=dict)

    def at(self, index: int, window: int = 5) -> float:
        """Median pass time in µs over iterations `index - window .. index + window`, all repeats."""
        values = [s for i in range(index - window, index + window + 1) for s in self.seconds.get(i, [])]
        return percentile(values, 50) * 1e6


class _Log:
    """An in-memory event log folded into one `ExecutionState`, as the service's cache is."""

    def __init__(self, playbook: Playbook) -> None:
        self.playbook = playbook
        self._ids = itertools.count(EXECUTION_ID + 1)
        self.state: ExecutionState | None = None
        self.open: list[NewCommand] = []

    def new_id(self) -> int:
        return next(self._ids)

    def persist(self, decision: Decision) -> None:
        commands = {c.event_index: c for c in decision.commands}
        for index, event in enumerate(decision.events):
            self.fold(
                EventRecord(
                    event_id=self.new_id(),
                    event_type=event.event_type,
                    node_name=event.node_name,
                    status=event.status,
                    context=event.context,
                    result=event.result,
                    meta=event.meta,
                    error=event.error,
                    command_id=event.command_id,
                    created_at=datetime.now(UTC),
                )
            )
            if index in commands:
                self.open.append(commands[index])

    def fold(self, record: EventRecord) -> None:
        if self.state is None:
            self.state = ExecutionState.from_root(record)
        else:
            self.state.apply(record)

    def worker_success(self, command: NewCommand) -> EventRecord:
        """The real worker's events for a successful command; returns the trigger."""
        result = {"status": "success", "context": {"data": {}, "status": "success"}}
        payloads: list[tuple[str, str, dict[str, Any]]] = [
            ("command.claimed", "RUNNING", {"worker_id": "bench"}),
            ("command.started", "RUNNING", {}),
            ("call.done", "COMPLETED", {"call_index": 0, "result": result}),
            ("step.exit", "COMPLETED", {"status": "COMPLETED", "result": result}),
            ("command.completed", "COMPLETED", {"status": "success"}),
        ]
        record = None
        for event_type, status, payload in payloads:
            context = {"command_id": command.command_id, **payload}
            record = EventRecord(
                event_id=self.new_id(),
                event_type=event_type,
                node_name=command.step,
                status=status,
                context=context,
                result={"status": status, "context": context},
                meta={"command_id": command.command_id},
                error=None,
                command_id=command.command_id,
                created_at=datetime.now(UTC),
            )
            self.fold(record)
        assert record is not None
        return record


def _drive(log: _Log, on_pass: Callable[[NewCommand, float], None]) -> None:
    first = start(
        log.playbook,
        execution_id=EXECUTION_ID,
        catalog_id=CATALOG_ID,
        path="bench/passes",
        workload={},
        parent_execution_id=None,
        new_id=log.new_id,
    )
    log.persist(first)
    while log.open:
        command = log.open.pop(0)
        trigger = log.worker_success(command)
        assert log.state is not None
        began = time.perf_counter()
        decision = advance(log.state, log.playbook, trigger=trigger, new_id=log.new_id)
        elapsed = time.perf_counter() - began
        log.persist(decision)
        on_pass(command, elapsed)
        while needs_follow_up(decision):
            decision = advance(log.state, log.playbook, trigger=None, new_id=log.new_id)
            log.persist(decision)


def pass_times(iterations: int = 200, repeats: int = 5) -> PassTimes:
    """Times the pass each iteration's completion triggers, over `repeats` whole runs."""
    playbook = parse_playbook(yaml.safe_load(sequential_loop(iterations)))
    times = PassTimes(iterations, repeats)

    def record(command: NewCommand, seconds: float) -> None:
        if command.step == "walk" and command.iter_index is not None:
            times.seconds.setdefault(command.iter_index, []).append(seconds)

    _drive(_Log(playbook), lambda _command, _seconds: None)  # warm-up: imports, template caches
    for _ in range(repeats):
        _drive(_Log(playbook), record)
    return times
