"""Drive the pure engine like the execution service does, with a simulated worker.

`Run` keeps an in-memory event log: every decision's events get ids and are folded back
into the state. Each trigger gets exactly one pass, plus a follow-up pass when
`needs_follow_up` asks for one, which is the whole contract a service has to honour; a
final check makes sure no further pass would have decided anything. Worker events are
stored the way the event route stores them: `context = payload`,
`result = {status, context: payload}`, the `command_id` column filled.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import yaml

from services.execution.engine.dsl import parse_playbook
from services.execution.engine.evaluate import advance, needs_follow_up, start
from services.execution.engine.model import Playbook
from services.execution.engine.records import Decision, EventRecord, NewCommand
from services.execution.engine.state import ExecutionState
from tests.helpers.shared import fixture_file

EXECUTION_ID = 612400000000000001
CATALOG_ID = 612345678901234567


def load_fixture(relative: str) -> dict[str, Any]:
    """A public fixture playbook (`tests.helpers.shared.fixture_file`: skipped, or failed in CI)."""
    document = yaml.safe_load(fixture_file(f"playbooks/{relative}").read_text())
    assert isinstance(document, dict)
    return document


def playbook_doc(workflow: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "noetl.io/v2",
        "kind": "Playbook",
        "metadata": {"name": "test", "path": "tests/engine"},
        "workflow": workflow,
        **extra,
    }


def python_step(name: str, **fields: Any) -> dict[str, Any]:
    return {"step": name, "tool": {"kind": "python", "code": "result = {}"}, **fields}


class Run:
    def __init__(self, document: Mapping[str, Any], workload: Mapping[str, Any] | None = None) -> None:
        self.playbook: Playbook = parse_playbook(document)
        self.path = self.playbook.path or self.playbook.name
        self._ids = itertools.count(EXECUTION_ID + 1)
        self.log: list[EventRecord] = []
        self.commands: list[NewCommand] = []
        self.decisions: list[Decision] = []
        self.state: ExecutionState | None = None
        first = start(
            self.playbook,
            execution_id=EXECUTION_ID,
            catalog_id=CATALOG_ID,
            path=self.path,
            workload=dict(workload or {}),
            parent_execution_id=None,
            new_id=self.new_id,
        )
        self._persist(first)
        self._follow_up(first)

    def new_id(self) -> int:
        return next(self._ids)

    # --- the service side ------------------------------------------------------------------

    def _persist(self, decision: Decision) -> list[EventRecord]:
        self.decisions.append(decision)
        records = []
        command_ids = {c.event_index: c for c in decision.commands}
        for index, event in enumerate(decision.events):
            record = EventRecord(
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
                parent_event_id=event.parent_event_id,
            )
            records.append(record)
            if index in command_ids:
                self.commands.append(command_ids[index])
        for record in records:
            self._fold(record)
        return records

    def _fold(self, record: EventRecord) -> None:
        self.log.append(record)
        if self.state is None:
            self.state = ExecutionState.from_root(record)
        else:
            self.state.apply(record)

    def trigger(self, record: EventRecord) -> None:
        assert self.state is not None
        decision = advance(self.state, self.playbook, trigger=record, new_id=self.new_id)
        self._persist(decision)
        self._follow_up(decision)

    def _follow_up(self, decision: Decision) -> None:
        assert self.state is not None
        while needs_follow_up(decision):
            decision = advance(self.state, self.playbook, trigger=None, new_id=self.new_id)
            self._persist(decision)
        # One pass per trigger must be enough: a further pass decides nothing.
        assert not advance(self.state, self.playbook, trigger=None, new_id=self.new_id).events

    # --- the worker side -------------------------------------------------------------------

    def worker_event(
        self,
        command: NewCommand,
        event_type: str,
        payload: dict[str, Any],
        meta: dict[str, Any] | None = None,
    ) -> EventRecord:
        lowered = event_type.lower()
        if "error" in lowered or "failed" in lowered:
            status = "FAILED"
        elif any(word in lowered for word in ("done", "exit", "completed")):
            status = "COMPLETED"
        else:
            status = "RUNNING"
        record = EventRecord(
            event_id=self.new_id(),
            event_type=event_type,
            node_name=command.step,
            status=status,
            context={"command_id": command.command_id, **payload},
            result={"status": status, "context": {"command_id": command.command_id, **payload}},
            meta={"command_id": command.command_id, "actionable": False, **(meta or {})},
            error=payload.get("error") if isinstance(payload.get("error"), str) else None,
            command_id=command.command_id,
            created_at=datetime.now(UTC),
        )
        self._fold(record)
        return record

    def succeed(self, command: NewCommand, data: Any = None, *, call_status: str = "success") -> None:
        """The worker's success sequence (dsl.md §16 step 7), then the orchestrator pass."""
        self.worker_event(command, "command.claimed", {"worker_id": "w1"})
        self.worker_event(command, "command.started", {})
        result = {
            "status": call_status,
            "context": {"data": {} if data is None else data, "status": call_status},
        }
        self.worker_event(command, "call.done", {"call_index": 0, "result": result})
        self.worker_event(command, "step.exit", {"status": "COMPLETED", "result": result})
        self.trigger(self.worker_event(command, "command.completed", {"status": "success"}))

    def fail(self, command: NewCommand, error: str = "boom") -> None:
        """The worker's failure sequence (dsl.md §16 step 8), then the orchestrator pass."""
        self.worker_event(command, "command.claimed", {"worker_id": "w1"})
        self.worker_event(command, "command.started", {})
        self.worker_event(command, "call.error", {"call_index": 0, "error": error})
        self.trigger(self.worker_event(command, "command.failed", {"error": error}))

    # --- inspection ------------------------------------------------------------------------

    def open_commands(self) -> list[NewCommand]:
        assert self.state is not None
        return [c for c in self.commands if c.command_id in self.state.open_commands]

    def command(self, step: str) -> NewCommand:
        """The newest open command of `step`."""
        matching = [c for c in self.open_commands() if c.step == step]
        assert matching, f"no open command for {step}; open: {[c.step for c in self.open_commands()]}"
        return matching[-1]

    def run_all(self, results: Mapping[str, Any], *, limit: int = 100) -> None:
        """Complete open commands, oldest first, with `results[step]` until none is left."""
        for _ in range(limit):
            pending = self.open_commands()
            if not pending:
                return
            self.succeed(pending[0], results.get(pending[0].step, {}))
        raise AssertionError("too many commands")

    def server_events(self) -> list[tuple[str, str]]:
        """(event_type, node_name) of every event the engine wrote, in order."""
        worker = {"command.claimed", "command.started", "call.done", "call.error", "step.exit",
                  "command.completed", "command.failed"}  # fmt: skip
        return [
            (r.event_type, r.node_name or "")
            for r in self.log
            if r.event_type not in worker or r.command_id is None
        ]

    def events_of(self, event_type: str) -> list[EventRecord]:
        return [r for r in self.log if r.event_type == event_type]

    @property
    def terminal(self) -> EventRecord | None:
        ends = [r for r in self.log if r.event_type in ("playbook.completed", "playbook.failed")]
        assert len(ends) <= 1, "more than one terminal event"
        return ends[0] if ends else None
