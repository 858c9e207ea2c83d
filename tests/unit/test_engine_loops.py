"""Loops (dsl.md §5, §12.7) and workflow-arc loops through back-edges (§12.9)."""

from __future__ import annotations

from typing import Any

import pytest

from kernel.errors import Unprocessable
from services.execution.engine.evaluate import needs_follow_up
from tests.unit.engine_harness import Run, load_fixture, playbook_doc, python_step

GATE = {"spec": {"mode": "exclusive"}, "arcs": [{"step": "after", "when": '{{ event.name == "loop.done" }}'}]}


def loop_doc(mode: str = "sequential", items: Any = None, **spec: Any) -> dict[str, Any]:
    return playbook_doc(
        [
            python_step("start", next="each"),
            python_step(
                "each",
                loop={"in": "{{ workload.items }}", "iterator": "item", "spec": {"mode": mode, **spec}},
                tool={"kind": "python", "input": {"value": "{{ item }}", "i": "{{ iter._index }}"}},
                next=GATE,
            ),
            python_step(
                "after", tool={"kind": "python", "input": {"all": "{{ each }}", "n": "{{ each | length }}"}}
            ),
        ],
        workload={"items": [10, 20, 30] if items is None else items},
    )


def test_sequential_loop_issues_one_iteration_at_a_time() -> None:
    run = Run(loop_doc())
    run.succeed(run.command("start"))
    (enter,) = [r for r in run.events_of("step.enter") if r.node_name == "each"]
    assert enter.context == {"iterations_expected": 3, "iterator_var": "item"}
    for index, value in enumerate([10, 20, 30]):
        (command,) = run.open_commands()
        assert command.step == "each" and command.iter_index == index
        assert command.context["input"] == {
            "value": value,
            "i": index,
            "item": value,
            "_index": index,
            "_total": 3,
        }
        assert command.meta["iteration_index"] == index and command.meta["iteration_total"] == 3
        assert command.meta["iterator_step"] == "each" and command.meta["item_var"] == "item"
        assert command.context["render_context"]["iter"] == {"item": value, "_index": index, "_total": 3}
        run.succeed(command, {"doubled": value * 2})
    (done,) = run.events_of("loop.done")
    assert done.context == {"iterations": 3, "completed": 3, "failed": 0}
    after = run.command("after")
    assert after.context["input"] == {"all": [{"doubled": 20}, {"doubled": 40}, {"doubled": 60}], "n": 3}
    assert len({c.command_id for c in run.commands if c.step == "each"}) == 3
    order = [r.event_type for r in run.log]
    assert order.index("loop.done") < max(i for i, r in enumerate(run.log) if r.node_name == "after")
    run.succeed(after)
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.completed"


def test_parallel_loop_respects_max_in_flight() -> None:
    run = Run(loop_doc("parallel", [1, 2, 3, 4, 5], max_in_flight=2))
    run.succeed(run.command("start"))
    assert [c.iter_index for c in run.open_commands()] == [0, 1]
    run.succeed(run.open_commands()[1], {"v": 2})
    assert [c.iter_index for c in run.open_commands()] == [0, 2]
    run.succeed(run.open_commands()[0], {"v": 1})
    assert [c.iter_index for c in run.open_commands()] == [2, 3]
    run.run_all({"each": {"v": 0}})
    assert run.events_of("loop.done") and run.terminal is not None


def test_parallel_loop_without_limit_issues_everything() -> None:
    run = Run(loop_doc("parallel", [1, 2, 3, 4]))
    run.succeed(run.command("start"))
    assert [c.iter_index for c in run.open_commands()] == [0, 1, 2, 3]


def test_aggregate_is_in_iteration_order_whatever_the_arrival_order() -> None:
    run = Run(loop_doc("parallel", ["a", "b", "c"]))
    run.succeed(run.command("start"))
    for command in reversed(run.open_commands()):
        run.succeed(command, {"item": command.context["input"]["value"]})
    assert run.command("after").context["input"]["all"] == [{"item": "a"}, {"item": "b"}, {"item": "c"}]


def test_empty_loop_exits_at_once() -> None:
    run = Run(loop_doc(items=[]))
    run.succeed(run.command("start"))
    exit_decision = next(d for d in run.decisions if any(e.event_type == "step.exit" for e in d.events))
    assert needs_follow_up(exit_decision)
    assert not any(needs_follow_up(d) for d in run.decisions if d is not exit_decision)
    assert [(t, n) for t, n in run.server_events() if n == "each"] == [
        ("step.enter", "each"),
        ("step.exit", "each"),
        ("loop.done", "each"),
    ]
    assert run.command("after").context["input"] == {"all": [], "n": 0}


@pytest.mark.parametrize(("items", "expected"), [({"a": 1}, 1), ("x, y\nz", 3), (2, 2), ('["p", "q"]', 2)])
def test_loop_collections_are_coerced(items: Any, expected: int) -> None:
    run = Run(loop_doc("parallel", items))
    run.succeed(run.command("start"))
    assert len(run.open_commands()) == expected


def test_a_non_iterable_collection_fails_the_run() -> None:
    doc = loop_doc(items=[1])
    doc["workflow"][1]["loop"]["in"] = "{{ workload.missing }}"
    run = Run(doc)
    run.succeed(run.command("start"))
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.failed"
    assert terminal.error == (
        "Orchestrator evaluate failed: loop step 'each': Loop expression '{{ workload.missing }}' "
        "did not evaluate to an iterable (got null)"
    )
    assert terminal.meta == {"reason": "evaluate_error"}


def test_a_failed_iteration_fails_the_loop_step_once_the_running_iterations_report() -> None:
    run = Run(loop_doc("parallel", [1, 2, 3], max_in_flight=2))
    run.succeed(run.command("start"))
    first, second = run.open_commands()
    run.fail(first)
    # The failed loop is not refilled, and the run waits for the iteration still out.
    assert run.terminal is None and run.open_commands() == [second]
    run.succeed(second, {"doubled": 4})
    terminal = run.terminal
    assert terminal is not None and terminal.context["failed_steps"] == ["each"]
    assert len([c for c in run.commands if c.step == "each"]) == 2
    assert not run.events_of("loop.done") and not [c for c in run.commands if c.step == "after"]


def test_a_looping_start_gets_a_step_enter() -> None:
    doc = playbook_doc(
        [python_step("start", loop={"in": "{{ xs }}", "iterator": "x"})],
        workload={"xs": [1, 2]},
    )
    run = Run(doc)
    assert [(t, n) for t, n in run.server_events()][2:] == [
        ("step.enter", "start"),
        ("command.issued", "start"),
    ]
    run.run_all({})
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.completed"


@pytest.mark.parametrize("value", ["{{ xs }}", "{{ missing }}", "a,b"])
def test_a_looping_start_needs_a_list(value: str) -> None:
    doc = playbook_doc([python_step("start", loop={"in": value, "iterator": "x"})], workload={"xs": {"a": 1}})
    with pytest.raises(Unprocessable, match="loop step 'start'"):
        Run(doc)


def test_pagination_basic_fixture_runs_probes_in_parallel() -> None:
    run = Run(load_fixture("pagination/basic/test_pagination_basic.yaml"), {"api_url": "http://mock"})
    run.succeed(run.command("start"), {"status": "initialized"})
    reset = run.command("reset_probe_stats")
    assert reset.context["input"] == {"api_url": "http://mock"}
    run.succeed(reset, {"status": "reset"})
    plan = run.command("build_probe_plan")
    assert plan.context["input"] == {"slow_delay_seconds": 4.0, "fast_probe_count": 4}
    run.succeed(plan, {"probe_delays": [4.0, 0.0, 0.0, 0.0, 0.0], "expected_total": 5})
    probes = run.open_commands()
    assert [c.step for c in probes] == ["run_probes"] * 5
    assert [c.context["tool_config"]["params"]["delay_seconds"] for c in probes] == [4.0, 0.0, 0.0, 0.0, 0.0]
    assert probes[0].context["tool_config"]["url"] == "http://mock/api/v1/concurrency/probe"
    for probe in probes:
        run.succeed(probe, {"status_code": 200})
    validate = run.command("validate_results")
    assert validate.context["input"] == {
        "api_url": "http://mock",
        "expected_total": 5,
        "expected_min_overlap": 2,
    }
    run.run_all({})
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.completed"


def test_pagination_offset_fixture_loops_through_a_back_edge() -> None:
    run = Run(load_fixture("pagination/offset/test_pagination_offset.yaml"), {"api_url": "http://mock"})
    run.succeed(run.command("start"), {"status": "initialized"})
    offsets = []
    collected: list[int] = []
    for _ in range(10):
        fetch = run.command("fetch_page")
        params = fetch.context["tool_config"]["params"]
        offsets.append(params["offset"])
        users = list(range(params["offset"] + 1, min(params["offset"] + params["limit"], 35) + 1))
        has_more = params["offset"] + params["limit"] < 35
        run.succeed(fetch, {"status_code": 200, "body": {"users": users, "has_more": has_more}})
        check = run.command("check_pagination")
        response = check.context["input"]
        assert response["response"]["body"]["users"] == users
        collected = response["collected"] + users
        run.succeed(
            check,
            {
                "collected_users": collected,
                "has_more": has_more,
                "next_offset": response["current_offset"] + 10,
            },
        )
        if not has_more:
            break
    assert offsets == [0, 10, 20, 30]
    validate = run.command("validate_results")
    assert validate.context["input"]["users"] == list(range(1, 36))
    run.run_all({})
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.completed"
    assert len([r for r in run.events_of("step.enter") if r.node_name == "fetch_page"]) == 4
    assert [r.node_name for r in run.events_of("step.skipped")] == []


def test_self_loop_counter_runs_until_its_guard_flips() -> None:
    doc = playbook_doc(
        [
            python_step("start", next="count"),
            python_step(
                "count",
                set={"ctx.i": "{{ i + 1 }}"},
                next={
                    "spec": {"mode": "exclusive"},
                    "arcs": [
                        {"step": "count", "when": "{{ i < 3 }}"},
                        {"step": "done", "when": "{{ i >= 3 }}"},
                    ],
                },
            ),
            python_step("done", tool={"kind": "python", "input": {"i": "{{ ctx.i }}"}}),
        ],
        workload={"i": 0},
    )
    run = Run(doc)
    run.succeed(run.command("start"))
    for _ in range(3):
        run.succeed(run.command("count"))
    assert run.command("done").context["input"] == {"i": 3}
    assert len([r for r in run.events_of("step.enter") if r.node_name == "count"]) == 3
    assert [r.context["values"] for r in run.events_of("ctx.updated")] == [{"i": 1}, {"i": 2}, {"i": 3}]
    assert run.events_of("step.skipped") == []  # a loop branch point never skips its exit
