"""Fan-out and fan-in barriers (dsl.md §12.4, §12.6) on the public fixtures and small graphs."""

from __future__ import annotations

from tests.unit.engine_harness import Run, load_fixture, playbook_doc, python_step


def entered(run: Run, step: str) -> int:
    return len([r for r in run.events_of("step.enter") if r.node_name == step])


def test_fanout_reduce_waits_for_both_branches() -> None:
    run = Run(load_fixture("fanout_reduce/fanout_reduce_phase6.yaml"))
    run.succeed(run.command("start"), {"status": "ok"})
    assert sorted(c.step for c in run.open_commands()) == ["enrich_customer", "normalize_customer"]
    run.succeed(run.command("normalize_customer"), {"normalized": True})
    assert [c.step for c in run.open_commands()] == ["enrich_customer"]
    run.succeed(run.command("enrich_customer"), {"enriched": True})
    assert [c.step for c in run.open_commands()] == ["reduce_customer"]
    run.succeed(run.command("reduce_customer"), {"reduced": True})
    assert entered(run, "reduce_customer") == 1
    completions = [r.node_name for r in run.events_of("command.completed")]
    assert completions.index("reduce_customer") > completions.index("enrich_customer")
    assert completions.index("reduce_customer") > completions.index("normalize_customer")
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.completed"
    assert terminal.context["final_step"] == "reduce_customer"


def test_fanout_reduce_in_the_other_completion_order() -> None:
    run = Run(load_fixture("fanout_reduce/fanout_reduce_phase6.yaml"))
    run.succeed(run.command("start"))
    run.succeed(run.command("enrich_customer"))
    assert [c.step for c in run.open_commands()] == ["normalize_customer"]
    run.succeed(run.command("normalize_customer"))
    run.run_all({})
    assert entered(run, "reduce_customer") == 1


def control_flow(workload: dict[str, int] | None = None) -> Run:
    run = Run(load_fixture("control_flow_workbook/control_flow_workbook.yaml"), workload)
    run.succeed(run.command("start"), {"status": "initialized"})
    return run


def test_control_flow_hot_route() -> None:
    run = control_flow()
    command = run.command("eval_flag")
    assert command.context["input"] == {"temperature_c": 30}
    assert command.context["tool_config"]["kind"] == "python"
    run.succeed(command, {"is_hot": True, "message": "hot"})
    assert [c.step for c in run.open_commands()] == ["hot_path"]
    assert [r.node_name for r in run.events_of("step.skipped")] == ["cold_path"]
    run.succeed(run.command("hot_path"), {"status": "routing_to_parallel"})
    assert sorted(c.step for c in run.open_commands()) == ["hot_task_a", "hot_task_b"]
    run.succeed(run.command("hot_task_a"), {"who": "A"})
    assert [c.step for c in run.open_commands()] == ["hot_task_b"]  # `end` waits for hot_task_b only
    run.succeed(run.command("hot_task_b"), {"who": "B"})
    assert [c.step for c in run.open_commands()] == ["end"]
    run.succeed(run.command("end"), {"status": "complete"})
    assert entered(run, "end") == 1
    assert "cold_task" not in [c.step for c in run.commands]
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.completed"


def test_control_flow_cold_route() -> None:
    run = control_flow({"temperature_c": 10})
    command = run.command("eval_flag")
    assert command.context["input"] == {"temperature_c": 10}
    run.succeed(command, {"is_hot": False, "message": "cold"})
    assert [r.node_name for r in run.events_of("step.skipped")] == ["hot_path"]
    run.run_all({})
    assert [c.step for c in run.commands] == ["start", "eval_flag", "cold_path", "cold_task", "end"]
    assert entered(run, "end") == 1
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.completed"


def test_a_skipped_upstream_counts_as_done() -> None:
    doc = playbook_doc(
        [
            python_step(
                "start",
                next={"spec": {"mode": "inclusive"}, "arcs": [{"step": "a"}, {"step": "b", "when": "false"}]},
            ),
            python_step("a", next="join"),
            python_step("b", next="join"),
            python_step("join"),
        ]
    )
    run = Run(doc)
    run.succeed(run.command("start"))
    assert [r.node_name for r in run.events_of("step.skipped")] == ["b"]
    run.succeed(run.command("a"))
    assert [c.step for c in run.open_commands()] == ["join"]


def test_a_failed_upstream_counts_as_done_but_the_run_fails() -> None:
    doc = playbook_doc(
        [
            python_step("start", next=["a", "b"]),
            python_step("a", next="join"),
            python_step("b", next="join"),
            python_step("join"),
        ]
    )
    run = Run(doc)
    run.succeed(run.command("start"))
    run.fail(run.command("b"))
    run.succeed(run.command("a"))
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.failed"
    assert terminal.context["failed_steps"] == ["b"]
