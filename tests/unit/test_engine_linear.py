"""Linear runs: the event order of dsl.md §10.2 and the command context of http-api.md §13.4."""

from __future__ import annotations

from datetime import UTC, datetime

from services.execution.engine.evaluate import advance, start
from services.execution.engine.records import EventRecord
from tests.unit.engine_harness import CATALOG_ID, EXECUTION_ID, Run, load_fixture, playbook_doc, python_step

HELLO_RESULTS = {
    "start": {"status": "initialized"},
    "test_step": {"status": "ok", "data": {"message": "Hello World"}},
    "end": {"status": "complete"},
}


def test_hello_world_event_sequence() -> None:
    run = Run(load_fixture("hello_world/hello_world.yaml"))
    run.run_all(HELLO_RESULTS)
    assert [(r.event_type, r.node_name, r.status) for r in run.log] == [
        ("playbook.initialized", "fixtures/playbooks/hello_world", "STARTED"),
        ("workflow.initialized", "workflow", "STARTED"),
        ("command.issued", "start", "PENDING"),
        ("command.claimed", "start", "RUNNING"),
        ("command.started", "start", "RUNNING"),
        ("call.done", "start", "COMPLETED"),
        ("step.exit", "start", "COMPLETED"),
        ("command.completed", "start", "COMPLETED"),
        ("step.enter", "test_step", "ENTERED"),
        ("command.issued", "test_step", "PENDING"),
        ("command.claimed", "test_step", "RUNNING"),
        ("command.started", "test_step", "RUNNING"),
        ("call.done", "test_step", "COMPLETED"),
        ("step.exit", "test_step", "COMPLETED"),
        ("command.completed", "test_step", "COMPLETED"),
        ("step.enter", "end", "ENTERED"),
        ("command.issued", "end", "PENDING"),
        ("command.claimed", "end", "RUNNING"),
        ("command.started", "end", "RUNNING"),
        ("call.done", "end", "COMPLETED"),
        ("step.exit", "end", "COMPLETED"),
        ("command.completed", "end", "COMPLETED"),
        ("playbook.completed", "fixtures/playbooks/hello_world", "COMPLETED"),
    ]
    terminal = run.terminal
    assert terminal is not None and terminal.context == {"status": "COMPLETED", "final_step": "end"}
    assert run.decisions[-1].terminal == "COMPLETED"


def test_hello_world_root_events_and_start_command() -> None:
    run = Run(load_fixture("hello_world/hello_world.yaml"))
    root, workflow = run.log[0], run.log[1]
    assert root.context == {
        "catalog_id": str(CATALOG_ID),
        "execution_id": str(EXECUTION_ID),
        "path": "fixtures/playbooks/hello_world",
        "workload": {"message": "Hello World"},
    }
    assert workflow.context == {
        "first_step": "start",
        "playbook_path": "fixtures/playbooks/hello_world",
        "workload": {"message": "Hello World"},
    }
    (command,) = run.commands
    assert list(command.context) == ["tool_config", "input", "render_context", "spec"]
    assert command.context["tool_config"] == {
        "kind": "python",
        "code": 'result = {"status": "initialized"}\n',
    }
    assert command.context["input"] == {}
    assert command.context["spec"] is None
    assert command.meta == {
        "command_id": command.command_id,
        "step": "start",
        "tool_kind": "python",
        "max_attempts": 3,
        "attempt": 1,
        "execution_id": str(EXECUTION_ID),
        "catalog_id": str(CATALOG_ID),
        "actionable": True,
    }
    issued = run.log[2]
    assert issued.command_id == command.command_id and issued.meta == command.meta


def test_hello_world_renders_the_workload_into_the_input() -> None:
    run = Run(load_fixture("hello_world/hello_world.yaml"))
    run.succeed(run.command("start"), HELLO_RESULTS["start"])
    command = run.command("test_step")
    assert command.context["input"] == {"message": "Hello World"}
    render_context = command.context["render_context"]
    assert render_context["start"] == {"status": "initialized", "data": {"status": "initialized"}}
    assert render_context["execution_id"] == str(EXECUTION_ID)
    assert render_context["message"] == "Hello World"
    assert render_context["workload"] == {"message": "Hello World"}
    assert render_context["ctx"] == {"message": "Hello World"}
    assert "steps" not in render_context
    assert command.meta["trigger_step"] == "start"


def test_simple_python_fixture() -> None:
    run = Run(load_fixture("simple_python.yaml"), {"message": "from the request"})
    start_command = run.command("start")
    assert start_command.context["input"] == {"message": "from the request"}
    run.run_all({"start": {"status": "ok"}, "end": {"status": "completed"}})
    assert [(t, n) for t, n in run.server_events()] == [
        ("playbook.initialized", "test/simple_python"),
        ("workflow.initialized", "workflow"),
        ("command.issued", "start"),
        ("step.enter", "end"),
        ("command.issued", "end"),
        ("playbook.completed", "test/simple_python"),
    ]


def test_inputs_are_typed_and_code_is_a_template() -> None:
    doc = playbook_doc(
        [
            python_step(
                "start",
                tool={
                    "kind": "python",
                    "input": {"n": "{{ n }}", "s": "{{ s }}", "obj": "{{ obj }}", "flag": "{{ n > 3 }}"},
                    "code": "x = {{ n }}\nprint('{{ s }}')",
                },
            )
        ],
        workload={"n": 5, "s": "hi", "obj": {"a": [1, 2]}, "raw": "{{ not rendered }}"},
    )
    run = Run(doc)
    command = run.command("start")
    assert command.context["input"] == {"n": 5, "s": "hi", "obj": {"a": [1, 2]}, "flag": True}
    assert command.context["tool_config"]["code"] == "x = 5\nprint('hi')"
    assert run.log[0].context["workload"]["raw"] == "{{ not rendered }}"


def test_execution_identity_is_available_in_start() -> None:
    tool = {
        "kind": "python",
        "input": {"e": "{{ execution_id }}", "c": "{{ catalog_id }}", "p": "{{ path }}"},
    }
    run = Run(playbook_doc([python_step("start", tool=tool)]))
    assert run.command("start").context["input"] == {"e": EXECUTION_ID, "c": CATALOG_ID, "p": "tests/engine"}


def test_request_workload_wins_shallowly() -> None:
    doc = playbook_doc([python_step("start")], workload={"a": 1, "nested": {"x": 1, "y": 2}})
    run = Run(doc, {"nested": {"x": 9}, "b": 2})
    assert run.log[0].context["workload"] == {"a": 1, "nested": {"x": 9}, "b": 2}


def test_keychain_and_policy_templates_reach_the_worker_unrendered() -> None:
    tool = {
        "kind": "http",
        "url": "{{ base }}/x",
        "headers": {"Authorization": "Bearer {{ keychain.api.token }}"},
        "spec": {
            "policy": {
                "rules": [{"when": "{{ output.status == 'error' }}", "then": {"do": "retry", "attempts": 5}}]
            }
        },
    }
    run = Run(playbook_doc([python_step("start", tool=tool)], workload={"base": "http://h"}))
    command = run.command("start")
    config = command.context["tool_config"]
    assert config["url"] == "http://h/x"
    assert config["headers"] == {"Authorization": "Bearer {{ keychain.api.token }}"}
    assert config["spec"] == tool["spec"]
    assert command.meta["max_attempts"] == 5


def test_step_spec_and_legacy_args_are_forwarded() -> None:
    step = python_step("start", spec={"timeout": 30}, args={"legacy": "{{ x }}"})
    command = Run(playbook_doc([step])).command("start")
    assert command.context["spec"] == {"timeout": 30}
    assert command.context["args"] == {"legacy": "{{ x }}"}


def test_a_single_terminal_step_completes_the_run() -> None:
    run = Run(playbook_doc([python_step("start")]))
    run.run_all({})
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.completed"
    assert terminal.context["final_step"] == "start"


def test_nothing_is_decided_after_a_terminal_event_or_a_cancel() -> None:
    run = Run(playbook_doc([python_step("start")]))
    run.run_all({})
    assert run.state is not None and run.state.is_terminal
    assert not advance(run.state, run.playbook, trigger=None, new_id=run.new_id).events

    other = Run(playbook_doc([python_step("start", next="end"), python_step("end")]))
    cancel = EventRecord(
        event_id=other.new_id(),
        event_type="execution.cancelled",
        node_name="cancel",
        status="CANCELLED",
        context=None,
        result=None,
        meta=None,
        error=None,
        command_id=None,
        created_at=datetime.now(UTC),
    )
    assert other.state is not None
    other.state.apply(cancel)
    other.succeed(other.command("start"))
    assert other.events_of("step.enter") == [] and other.terminal is None


def test_start_is_pure_and_returns_the_start_command() -> None:
    playbook = Run(playbook_doc([python_step("start")])).playbook
    ids = iter(range(1, 100))
    decision = start(
        playbook,
        execution_id=1,
        catalog_id=2,
        path="p",
        workload={},
        parent_execution_id=7,
        new_id=lambda: next(ids),
        meta={"trace": {"traceparent": "00-abc"}},
    )
    assert [e.event_type for e in decision.events] == [
        "playbook.initialized",
        "workflow.initialized",
        "command.issued",
    ]
    assert decision.events[0].context["parent_execution_id"] == "7"
    assert decision.events[0].meta == {"emitter": "orchestrator", "trace": {"traceparent": "00-abc"}}
    (command,) = decision.commands
    assert command.event_index == 2 and decision.events[2].command_id == command.command_id
    assert command.meta["trace"] == {"traceparent": "00-abc"}
    assert decision.terminal is None
