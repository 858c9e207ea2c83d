"""The engine's side of the reference's playbook forms (issue #13), without servers: step-level
`input`, `ctx` values from loop iterations, and the result views shipped to the worker."""

from __future__ import annotations

from typing import Any

import pytest

from kernel.errors import InvalidArgument
from language.templating import RESULT_VIEWS, FieldMap, NamedList, Renderer, restore_views
from services.execution.engine.dsl import parse_playbook
from tests.unit.engine_harness import Run, playbook_doc, python_step

GATE = {"arcs": [{"step": "after", "when": '{{ event.name == "loop.done" }}'}]}


def test_a_step_level_input_goes_under_the_tools_and_iteration_variables_over_both() -> None:
    run = Run(
        playbook_doc(
            [
                python_step(
                    "start",
                    input={
                        "who": "step",
                        "greeting": "{{ workload.greeting }}",
                        "tag": "t-{{ workload.greeting }}",
                    },
                    tool={"kind": "http", "url": "http://x/{{ tag }}", "input": {"who": "tool"}},
                    next="each",
                ),
                python_step(
                    "each",
                    loop={"in": "{{ [1, 2] }}", "iterator": "n"},
                    input={"n": "step", "factor": 10},
                    next=GATE,
                ),
                python_step("after"),
            ],
            workload={"greeting": "hi"},
        )
    )
    start = run.command("start")
    assert start.context["input"] == {"who": "tool", "greeting": "hi", "tag": "t-hi"}
    # The tool's config sees the input's keys.
    assert start.context["tool_config"]["url"] == "http://x/t-hi"
    run.succeed(start, {})
    each = run.command("each")
    assert each.context["input"] == {"n": 1, "factor": 10, "_index": 0, "_total": 2}


def test_a_step_level_input_must_be_a_map() -> None:
    with pytest.raises(InvalidArgument, match=r"invalid type for step 'start': input: expected a map"):
        parse_playbook(playbook_doc([python_step("start", input=["a"])]))


def test_ctx_values_of_loop_iterations_apply_in_call_done_order() -> None:
    run = Run(
        playbook_doc(
            [
                python_step("start", loop={"in": "{{ [1, 2] }}", "iterator": "n"}, next=GATE),
                python_step("after", tool={"kind": "python", "input": {"seen": "{{ seen }}"}}),
            ]
        )
    )
    first = run.command("start")
    # The next iteration is dispatched with the first one's value.
    run.succeed(first, {"_context_updates": {"seen": [1]}})
    second = run.command("start")
    assert second.command_id != first.command_id
    assert second.context["render_context"]["seen"] == [1]
    run.succeed(second, {"_context_updates": {"seen": [1, 2]}})
    assert run.command("after").context["input"] == {"seen": [1, 2]}


def test_a_finished_loops_names_travel_beside_the_shipped_context() -> None:
    run = Run(
        playbook_doc(
            [
                python_step("start", loop={"in": "{{ [3, 5] }}", "iterator": "x"}, next=GATE),
                python_step("after", tool={"kind": "python", "input": {"rows": "{{ start.results }}"}}),
            ]
        )
    )
    for value in (9, 25):
        run.succeed(run.command("start"), {"sq": value})
    after = run.command("after")
    rows = [{"sq": 9}, {"sq": 25}]
    assert after.context["input"] == {"rows": rows}
    shipped = after.context["render_context"]
    assert (shipped["start"], shipped[RESULT_VIEWS]) == (rows, {"start": {"accessors": {}, "loop": True}})


def test_restored_views_answer_their_names_in_templates() -> None:
    accessors = {"_ref": "noetl://r", "_store": "db", "_uri": "http://u", "_preview": {"n": 1}}
    shipped: dict[str, Any] = {
        "big": {"n": 1},
        "each": [1, 2],
        RESULT_VIEWS: {
            "big": {"accessors": accessors, "loop": False},
            "each": {"accessors": {}, "loop": True},
        },
    }
    context = restore_views(shipped)
    assert RESULT_VIEWS not in context
    assert isinstance(context["big"], FieldMap) and isinstance(context["each"], NamedList)
    renderer = Renderer()
    assert renderer.render_value("{{ big._ref is defined }}", context) is True
    assert renderer.render_value("{{ big | length }}", context) == 1
    assert renderer.render_value("{{ each.results }}", context) == [1, 2]
    assert renderer.render_value("{{ each.count }}", context) == 2
