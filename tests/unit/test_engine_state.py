"""The incremental fold of dsl.md §12.2: step states, results, replay and idempotency."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from services.execution.engine.evaluate import advance
from services.execution.engine.results import extract_user_data, template_view
from services.execution.engine.state import ExecutionState, ExecutionStatus, StepStatus
from tests.unit.engine_harness import Run, playbook_doc, python_step


def two_steps() -> Run:
    return Run(playbook_doc([python_step("start", next="end"), python_step("end")], workload={"w": 1}))


def test_step_states_follow_the_command_lifecycle() -> None:
    run = two_steps()
    state = run.state
    assert state is not None and state.status is ExecutionStatus.IN_PROGRESS
    command = run.command("start")
    assert state.step("start").status is StepStatus.COMMAND_ISSUED and state.running == {"start"}
    run.worker_event(command, "command.claimed", {"worker_id": "w"})
    assert state.step("start").status is StepStatus.COMMAND_CLAIMED
    run.worker_event(command, "command.started", {})
    assert state.step("start").status is StepStatus.COMMAND_STARTED
    result = {"status": "success", "context": {"data": {"a": 1}, "status": "success"}}
    run.worker_event(command, "call.done", {"call_index": 0, "result": result})
    assert state.step("start").status is StepStatus.COMMAND_STARTED  # a result, not a completion
    assert state.step("start").result_data() == {"a": 1}
    run.worker_event(command, "step.exit", {"status": "COMPLETED", "result": result})
    assert state.step("start").status is StepStatus.COMPLETED and state.running == set()
    assert state.step("end").status is StepStatus.PENDING
    # The first of `step.exit` / `command.completed` ends the command; the second changes nothing.
    assert not state.has_open_commands
    run.trigger(run.worker_event(command, "command.completed", {"status": "success"}))
    assert state.step("start").status is StepStatus.COMPLETED
    assert state.open_commands == {run.command("end").command_id}


def test_from_root_reads_ids_path_and_workload() -> None:
    run = two_steps()
    state = ExecutionState.from_root(run.log[0])
    assert (state.execution_id, state.catalog_id, state.path) == (
        612400000000000001,
        612345678901234567,
        "tests/engine",
    )
    assert state.workload == {"w": 1}


def test_replaying_the_log_rebuilds_the_same_state() -> None:
    run = Run(
        playbook_doc(
            [
                python_step("start", set={"ctx.k": "{{ output.v }}"}, next=["a", "b"]),
                python_step("a"),
                python_step("b"),
            ]
        )
    )
    run.succeed(run.command("start"), {"v": 3})
    run.succeed(run.command("a"), {"x": 1})
    replayed = ExecutionState.from_root(run.log[0])
    for record in run.log[1:]:
        replayed.apply(record)
    assert run.state is not None
    assert {n: s.status for n, s in replayed.steps.items()} == {
        n: s.status for n, s in run.state.steps.items()
    }
    assert replayed.ctx == run.state.ctx == {"k": 3}
    assert replayed.flat_context() == {"k": 3}
    assert replayed.running == run.state.running == {"b"}
    assert replayed.last_event_id == run.state.last_event_id
    # A pass over a settled state decides nothing, however the state was built.
    assert not advance(replayed, run.playbook, trigger=None, new_id=run.new_id).events


def test_apply_ignores_rows_already_folded() -> None:
    run = two_steps()
    command = run.command("start")
    result = {"status": "success", "context": {"data": {"a": 1}, "status": "success"}}
    done = run.worker_event(command, "call.done", {"call_index": 0, "result": result})
    assert run.state is not None
    run.state.apply(replace(done, event_id=done.event_id - 1, result={"status": "COMPLETED", "context": {}}))
    assert run.state.step("start").result_data() == {"a": 1}


def test_a_later_completion_does_not_overwrite_the_call_result() -> None:
    run = two_steps()
    run.succeed(run.command("start"), {"from": "call.done"})
    assert run.state is not None
    assert run.state.step("start").result_data() == {"from": "call.done"}
    envelope = run.state.step("start").result_envelope()
    assert envelope["status"] == "COMPLETED" and "result" in envelope["context"]


def test_a_worker_step_exit_without_call_done_carries_the_result() -> None:
    run = two_steps()
    command = run.command("start")
    result = {"status": "success", "context": {"data": {"late": True}}}
    run.trigger(run.worker_event(command, "step.exit", {"status": "COMPLETED", "result": result}))
    assert run.state is not None and run.state.step("start").result_data() == {"late": True}


def test_underscore_aliases_are_read() -> None:
    run = two_steps()
    command = run.command("start")
    run.trigger(run.worker_event(command, "step_failed", {"error": "legacy"}))
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.failed"


def test_pipeline_context_updates_overlay_the_context() -> None:
    doc = playbook_doc(
        [
            python_step("start", tool=[{"name": "t", "kind": "python"}], next="b"),
            python_step(
                "b",
                tool={
                    "kind": "python",
                    "input": {"c": "{{ ctx.counter }}", "t": "{{ start.t.v }}", "v": "{{ start.v }}"},
                },
            ),
        ]
    )
    run = Run(doc)
    run.succeed(run.command("start"), {"t": {"v": 5}, "_context_updates": {"ctx.counter": 42}})
    assert run.command("b").context["input"] == {"c": 42, "t": 5, "v": 5}


def test_pipeline_tasks_are_rendered_except_worker_fields() -> None:
    tasks: list[dict[str, Any]] = [
        {
            "name": "fetch",
            "kind": "http",
            "url": "{{ base }}/x",
            "set": {"r": "{{ output }}"},
            "params": {"p": "{{ later }}"},
        },
        {"name": "use", "kind": "python", "input": {"r": "{{ r }}"}, "code": "x = {{ n }}"},
    ]
    run = Run(playbook_doc([python_step("start", tool=tasks)], workload={"base": "http://h", "n": 2}))
    command = run.command("start")
    assert command.tool_kind == "task_sequence" and command.meta["tool_kind"] == "task_sequence"
    assert command.context["tool_config"] == [
        {
            "name": "fetch",
            "kind": "http",
            "url": "http://h/x",
            "set": {"r": "{{ output }}"},
            "params": {"p": "{{ later }}"},
        },
        {"name": "use", "kind": "python", "input": {"r": "{{ r }}"}, "code": "x = 2"},
    ]
    assert command.context["input"] == {}


def test_extract_user_data_order() -> None:
    assert extract_user_data({"context": {"result": {"context": {"data": 1}}}}) == 1
    assert extract_user_data({"context": {"data": 2}}) == 2
    assert extract_user_data({"context": {"other": 3}}) == {"other": 3}
    assert extract_user_data([4]) == [4]


def test_template_view_adds_a_data_alias_and_flattens_pipelines() -> None:
    assert template_view({"a": 1}) == {"a": 1, "data": {"a": 1}}
    assert template_view({"data": 5}) == {"data": 5}
    flat = template_view({"fetch": {"status": "ok", "n": 1}, "check": {"status": "passed"}}, pipeline=True)
    assert flat["status"] == "passed" and flat["n"] == 1 and flat["fetch"] == {"status": "ok", "n": 1}
