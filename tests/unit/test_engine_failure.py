"""Failure propagation (dsl.md §12.11), error completions (§17.2) and `on_error` (§17.5)."""

from __future__ import annotations

from tests.unit.engine_harness import Run, load_fixture, playbook_doc, python_step


def linear() -> Run:
    return Run(
        playbook_doc([python_step("start", next="work"), python_step("work", next="end"), python_step("end")])
    )


def test_command_failed_fails_the_run_with_failed_steps() -> None:
    run = linear()
    run.succeed(run.command("start"))
    run.fail(run.command("work"), "division by zero")
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.failed"
    assert terminal.status == "FAILED" and terminal.node_name == "tests/engine"
    assert terminal.error == "Failed steps: work"
    assert terminal.context == {
        "status": "FAILED",
        "error": "Failed steps: work",
        "failed_steps": ["work"],
        "final_step": "work",
    }
    assert run.decisions[-1].terminal == "FAILED"
    assert run.state is not None and run.state.step("work").error == "division by zero"
    assert [n for t, n in run.server_events() if t == "step.enter"] == ["work"]


def test_error_completion_is_a_failure() -> None:
    run = linear()
    run.succeed(run.command("start"), call_status="error")
    terminal = run.terminal
    assert terminal is not None and terminal.context["failed_steps"] == ["start"]


def test_completion_after_call_error_is_a_failure() -> None:
    run = linear()
    command = run.command("start")
    run.worker_event(command, "call.error", {"error": "bad"})
    run.trigger(run.worker_event(command, "command.completed", {"status": "success"}))
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.failed"
    assert run.state is not None and run.state.step("start").error == "bad"


def test_completion_with_error_status_in_payload_is_a_failure() -> None:
    run = linear()
    command = run.command("start")
    run.trigger(run.worker_event(command, "command.completed", {"status": "FAILED", "error": "nope"}))
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.failed"


def test_siblings_finish_before_the_run_fails() -> None:
    doc = playbook_doc(
        [
            python_step("start", next=["a", "b", "x"]),
            python_step("a"),
            python_step("b", next="c"),
            python_step("c"),
            python_step("x"),
        ]
    )
    run = Run(doc)
    run.succeed(run.command("start"))
    run.fail(run.command("a"))
    assert run.terminal is None
    run.succeed(run.command("b"))
    assert sorted(c.step for c in run.open_commands()) == ["c", "x"]  # `x` runs, so `b` may go on
    run.succeed(run.command("x"))
    assert run.terminal is None
    run.succeed(run.command("c"))
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.failed"
    assert terminal.context["failed_steps"] == ["a"]
    assert run.events_of("playbook.completed") == []


def test_the_failure_wins_once_nothing_runs() -> None:
    doc = playbook_doc(
        [
            python_step("start", next=["a", "b"]),
            python_step("a"),
            python_step("b", next="c"),
            python_step("c"),
        ]
    )
    run = Run(doc)
    run.succeed(run.command("start"))
    run.fail(run.command("a"))
    run.succeed(run.command("b"))
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.failed"
    assert "c" not in [c.step for c in run.commands]


def test_arcs_of_a_failed_step_are_never_evaluated() -> None:
    run = linear()
    run.succeed(run.command("start"))
    run.fail(run.command("work"))
    assert run.events_of("step.skipped") == []
    assert "end" not in [n for t, n in run.server_events() if t == "step.enter"]


def test_on_error_arc_handles_the_failure() -> None:
    doc = playbook_doc(
        [
            python_step(
                "start",
                spec={"on_error": [{"step": "recover", "when": "{{ output.status == 'error' }}"}]},
                next="end",
            ),
            python_step(
                "recover",
                tool={"kind": "python", "input": {"why": "{{ output.error | default('-') }}"}},
                next="end",
            ),
            python_step("end"),
        ]
    )
    run = Run(doc)
    run.fail(run.command("start"), "table missing")
    command = run.command("recover")
    assert command.meta["on_error_of"] == "start"
    run.succeed(command)
    run.succeed(run.command("end"))
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.completed"


def test_unmatched_on_error_falls_back_to_the_failure_path() -> None:
    doc = playbook_doc(
        [
            python_step(
                "start", spec={"on_error": [{"step": "recover", "when": "{{ output.error == 'other' }}"}]}
            ),
            python_step("recover"),
        ]
    )
    run = Run(doc)
    run.fail(run.command("start"), "table missing")
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.failed"


def test_lease_expiry_reason_is_carried_to_the_terminal_event() -> None:
    run = linear()
    command = run.command("start")
    error = "lease_expired: worker w1 stopped heartbeating"
    run.trigger(run.worker_event(command, "command.failed", {"error": error}, {"reason": "lease_expired"}))
    terminal = run.terminal
    assert terminal is not None and terminal.meta == {"reason": "lease_expired"}


def test_late_worker_events_after_the_end_change_nothing() -> None:
    run = linear()
    command = run.command("start")
    run.fail(command)
    assert run.terminal is not None
    run.trigger(run.worker_event(command, "command.completed", {"status": "success"}))
    assert (
        len(
            [
                r
                for r in run.log
                if r.event_type.startswith("playbook.") and r.event_type != "playbook.initialized"
            ]
        )
        == 1
    )


def test_broken_sql_fixture_fails_on_its_sql_step() -> None:
    run = Run(load_fixture("broken_sql.yaml"))
    run.succeed(run.command("start"), {"status": "initialized"})
    failing = run.open_commands()[0]
    run.fail(failing, 'syntax error at or near "FROM"')
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.failed"
    assert terminal.context["failed_steps"] == [failing.step]
    assert "end" not in [c.step for c in run.commands]
