"""Routing through `next` (dsl.md §4), `set` (§6) and the no-match rule (§17.1)."""

from __future__ import annotations

from typing import Any

from tests.unit.engine_harness import Run, playbook_doc, python_step


def router(mode: str, *arcs: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"spec": {"mode": mode, **spec}, "arcs": list(arcs)}


def branching(mode: str, value: int) -> Run:
    doc = playbook_doc(
        [
            python_step(
                "start",
                next=router(
                    mode,
                    {"step": "high", "when": "{{ start.value > 5 }}"},
                    {"step": "positive", "when": "{{ start.value > 0 }}"},
                    {"step": "low", "when": "{{ start.value <= 5 }}"},
                ),
            ),
            python_step("high"),
            python_step("positive"),
            python_step("low"),
        ]
    )
    run = Run(doc)
    run.succeed(run.command("start"), {"value": value})
    return run


def test_exclusive_router_fires_the_first_match_and_skips_the_rest() -> None:
    run = branching("exclusive", 10)
    assert [c.step for c in run.open_commands()] == ["high"]
    assert [r.node_name for r in run.events_of("step.skipped")] == ["positive", "low"]
    skipped = run.events_of("step.skipped")[0]
    assert (
        skipped.status == "SKIPPED" and skipped.meta is not None and skipped.meta["trigger_step"] == "start"
    )


def test_inclusive_router_fires_every_match() -> None:
    run = branching("inclusive", 10)
    assert sorted(c.step for c in run.open_commands()) == ["high", "positive"]
    assert [r.node_name for r in run.events_of("step.skipped")] == ["low"]
    run.run_all({})
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.completed"


def test_arc_when_sees_the_step_output_alias() -> None:
    doc = playbook_doc(
        [
            python_step(
                "start", next=router("exclusive", {"step": "a", "when": "{{ output.data.ok and output.ok }}"})
            ),
            python_step("a"),
        ]
    )
    run = Run(doc)
    run.succeed(run.command("start"), {"ok": True})
    assert [c.step for c in run.open_commands()] == ["a"]


def test_targets_list_is_exclusive_by_default_and_merges_args() -> None:
    doc = playbook_doc(
        [
            python_step("start", next=[{"step": "a", "args": {"limit": 10}}, {"step": "b"}]),
            python_step("a", tool={"kind": "python", "input": {"limit": "{{ limit }}"}}),
            python_step("b"),
        ]
    )
    run = Run(doc)
    run.succeed(run.command("start"))
    command = run.command("a")
    assert command.context["input"] == {"limit": 10}
    assert command.context["render_context"]["limit"] == 10
    assert [r.node_name for r in run.events_of("step.skipped")] == ["b"]


def test_name_list_fans_out_and_single_name_routes() -> None:
    doc = playbook_doc(
        [
            python_step("start", next=["a", "b"]),
            python_step("a", next="c"),
            python_step("b"),
            python_step("c"),
        ]
    )
    run = Run(doc)
    run.succeed(run.command("start"))
    assert sorted(c.step for c in run.open_commands()) == ["a", "b"]
    run.succeed(run.command("a"))
    assert sorted(c.step for c in run.open_commands()) == ["b", "c"]
    assert run.events_of("step.skipped") == []


def test_terminal_step_without_next_completes_when_nothing_runs() -> None:
    doc = playbook_doc(
        [
            python_step("start", next=["side", "main"]),
            python_step("side"),
            python_step("main", next="end"),
            python_step("end"),
        ]
    )
    run = Run(doc)
    run.succeed(run.command("start"))
    run.succeed(run.command("side"))
    assert run.terminal is None  # `main` still runs
    run.succeed(run.command("main"))
    run.succeed(run.command("end"))
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.completed"


def test_no_matching_arc_fails_with_no_next_match() -> None:
    doc = playbook_doc(
        [
            python_step("start", next=router("exclusive", {"step": "a", "when": "{{ start.go }}"})),
            python_step("a"),
        ]
    )
    run = Run(doc)
    run.succeed(run.command("start"), {"go": False})
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.failed"
    message = "no_next_match: step 'start' completed but none of its next arcs matched"
    assert terminal.error == message
    assert terminal.context == {"status": "FAILED", "error": message, "final_step": "start"}
    assert terminal.meta == {"reason": "no_next_match"}
    assert [r.node_name for r in run.events_of("step.skipped")] == ["a"]


def test_on_no_match_complete_ends_the_branch() -> None:
    arcs = router("exclusive", {"step": "a", "when": "{{ start.go }}"}, on_no_match="complete")
    run = Run(playbook_doc([python_step("start", next=arcs), python_step("a")]))
    run.succeed(run.command("start"), {"go": False})
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.completed"


def test_step_set_is_persisted_and_seen_by_arcs_and_later_steps() -> None:
    doc = playbook_doc(
        [
            python_step(
                "start",
                set={"ctx.total": "{{ output.count * 2 }}", "plain": "{{ start.count }}", "bad": "{{ 1 + }}"},
                next=router("exclusive", {"step": "big", "when": "{{ ctx.total > 5 }}"}, {"step": "small"}),
            ),
            python_step(
                "big", tool={"kind": "python", "input": {"t": "{{ total }}", "p": "{{ ctx.plain }}"}}
            ),
            python_step("small"),
        ],
        workload={"total": 0},
    )
    run = Run(doc)
    run.succeed(run.command("start"), {"count": 3})
    (update,) = run.events_of("ctx.updated")
    assert update.status == "CONTEXT" and update.node_name == "start"
    assert update.context["values"] == {"total": 6, "plain": 3, "bad": "{{ 1 + }}"}
    assert update.context["gen"] == run.state.step("start").completed_event_id if run.state else False
    assert update.meta is not None and "bad" in update.meta["render_errors"]
    assert run.command("big").context["input"] == {"t": 6, "p": 3}
    order = [r.event_type for r in run.log]
    assert order.index("ctx.updated") < order.index("step.enter")
    assert len(run.events_of("ctx.updated")) == 1  # once per completion, not per pass


def test_workload_keeps_the_original_value_after_set() -> None:
    doc = playbook_doc(
        [
            python_step("start", set={"ctx.n": "{{ n + 1 }}"}, next="a"),
            python_step(
                "a",
                tool={
                    "kind": "python",
                    "input": {"n": "{{ n }}", "w": "{{ workload.n }}", "c": "{{ ctx.n }}"},
                },
            ),
        ],
        workload={"n": 1},
    )
    run = Run(doc)
    run.succeed(run.command("start"))
    assert run.command("a").context["input"] == {"n": 2, "w": 1, "c": 2}


def test_arc_set_reaches_only_the_dispatched_command() -> None:
    doc = playbook_doc(
        [
            python_step(
                "start",
                next=router(
                    "exclusive",
                    {
                        "step": "a",
                        "set": {
                            "ctx.test_var": "{{ initial }}",
                            "ctx.computed": 200,
                            "out": "{{ output.x }}",
                        },
                    },
                ),
            ),
            python_step(
                "a",
                tool={
                    "kind": "python",
                    "input": {"t": "{{ ctx.test_var }}", "c": "{{ computed }}", "o": "{{ out }}"},
                },
                next="b",
            ),
            python_step("b", tool={"kind": "python", "input": {"t": "{{ ctx.test_var | default('gone') }}"}}),
        ],
        workload={"initial": 100},
    )
    run = Run(doc)
    run.succeed(run.command("start"), {"x": 1})
    command = run.command("a")
    assert command.context["input"] == {"t": 100, "c": 200, "o": None}
    assert command.context["render_context"]["test_var"] == 100
    run.succeed(command)
    assert run.command("b").context["input"] == {"t": "gone"}
    assert run.events_of("ctx.updated") == []


def test_step_when_false_skips_and_follows_the_first_matching_arc() -> None:
    doc = playbook_doc(
        [
            python_step("start", next="guarded"),
            python_step(
                "guarded",
                when="{{ enabled }}",
                next=[{"step": "after", "when": "{{ false }}"}, {"step": "other"}],
            ),
            python_step("after"),
            python_step("other"),
        ],
        workload={"enabled": False},
    )
    run = Run(doc)
    run.succeed(run.command("start"))
    assert [r.node_name for r in run.events_of("step.skipped")] == ["guarded"]
    assert [c.step for c in run.open_commands()] == ["other"]


def test_skip_chain_reaching_end_completes_without_running_end() -> None:
    doc = playbook_doc(
        [
            python_step("start", next="guarded"),
            python_step("guarded", when="false", next="end"),
            python_step("end"),
        ]
    )
    run = Run(doc)
    run.succeed(run.command("start"))
    assert run.events_of("step.enter") == []
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.completed"


def test_when_guard_passes() -> None:
    doc = playbook_doc([python_step("start", next="guarded"), python_step("guarded", when="{{ start.ok }}")])
    run = Run(doc)
    run.succeed(run.command("start"), {"ok": True})
    assert [c.step for c in run.open_commands()] == ["guarded"]


def test_condition_render_error_ends_the_run() -> None:
    doc = playbook_doc(
        [
            python_step("start", next=router("exclusive", {"step": "a", "when": "{{ start.get('x') }}"})),
            python_step("a"),
        ]
    )
    run = Run(doc)
    run.succeed(run.command("start"))
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.failed"
    assert terminal.error is not None and terminal.error.startswith(
        "Orchestrator evaluate failed: unknown method"
    )
    assert terminal.meta == {"reason": "evaluate_error"}
    assert run.events_of("step.enter") == []


def test_tool_render_error_ends_the_run_without_issuing() -> None:
    doc = playbook_doc(
        [
            python_step("start", next="a"),
            python_step("a", tool={"kind": "python", "input": {"x": "{{ start | nosuchfilter }}"}}),
        ]
    )
    run = Run(doc)
    run.succeed(run.command("start"))
    terminal = run.terminal
    assert terminal is not None and terminal.meta == {"reason": "evaluate_error"}
    assert terminal.error is not None and terminal.error.startswith("Orchestrator evaluate failed: step 'a':")
    assert [c.step for c in run.commands] == ["start"]
    assert run.events_of("step.enter") == []


def test_start_render_error_still_records_the_execution() -> None:
    doc = playbook_doc([python_step("start", tool={"kind": "python", "code": "{{ x.items() }}"})])
    run = Run(doc)
    assert [r.event_type for r in run.log] == [
        "playbook.initialized",
        "workflow.initialized",
        "playbook.failed",
    ]
    assert run.commands == []
