"""Execute-time validation of dsl.md §2: which check fails, with which status and message."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kernel.errors import InvalidArgument, Unprocessable
from services.execution.engine.dsl import parse_playbook
from tests.unit.engine_harness import load_fixture, playbook_doc, python_step


def valid() -> dict[str, Any]:
    return playbook_doc(
        [
            python_step("start", next={"spec": {"mode": "exclusive"}, "arcs": [{"step": "end"}]}),
            {"step": "end", "tool": {"kind": "noop"}},
        ]
    )


def test_a_valid_playbook_parses() -> None:
    playbook = parse_playbook(valid())
    assert [step.name for step in playbook.steps] == ["start", "end"]
    assert playbook.path == "tests/engine"


def test_case_blocks_are_rejected_first() -> None:
    doc = valid()
    doc["workflow"][0]["case"] = [{"when": "x"}]
    del doc["metadata"]["name"]  # a later check would fail too; `case` wins
    with pytest.raises(InvalidArgument, match="'case' blocks are not allowed in canonical format"):
        parse_playbook(doc)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["workflow"][1].pop("tool"), "missing field `tool`"),
        (lambda d: d["workflow"][1].update(tool={"kind": "agent"}), "unknown tool kind 'agent'"),
        (lambda d: d["workflow"][1].update(tool={"code": "x"}), "missing field `kind`"),
        (lambda d: d["workflow"][0].update(next=42), "next: data did not match any shape"),
        (lambda d: d["workflow"][0].update(next=["a", {"step": "b"}]), "did not match any shape"),
        (lambda d: d["workflow"][0].update(next={"spec": {"mode": "exclusive"}}), "needs an `arcs` list"),
        (
            lambda d: d["workflow"][0].update(next={"spec": {"mode": "all"}, "arcs": []}),
            "unknown variant 'all'",
        ),
        (lambda d: d["metadata"].pop("name"), "missing field `name`"),
        (lambda d: d.pop("workflow"), "missing field `workflow`"),
        (
            lambda d: d["workflow"][1].update(tool={"kind": "workbook", "name": "nope"}),
            "workbook task 'nope'",
        ),
        (lambda d: d["workflow"][1].update(tool=[{"name": "a", "kind": "mcp"}]), "unknown tool kind 'mcp'"),
    ],
)
def test_deserialisation_failures_are_400(mutate: Any, message: str) -> None:
    doc = valid()
    mutate(doc)
    with pytest.raises(InvalidArgument, match=message):
        parse_playbook(doc)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(apiVersion="noetl.io/v1"), "Unsupported apiVersion 'noetl.io/v1'"),
        (lambda d: d.update(kind="Agent"), "Unsupported kind 'Agent'"),
        (lambda d: d["workflow"][0].update(step="begin"), "^Workflow must have a step named 'start'$"),
        (lambda d: d["workflow"][1].update(step="start"), "Duplicate step name: 'start'"),
        (lambda d: d["workflow"][0].update(next="nowhere"), "next target 'nowhere' is not a defined step"),
        (lambda d: d["workflow"][0].update(next=[{"step": "end", "when": "  "}]), "must not be empty"),
        (lambda d: d["workflow"][0].update(next=[{"step": "end", "when": "{ x }"}]), "has a '{'"),
        (lambda d: d["workflow"][1].update(when=""), "when must not be empty"),
        (lambda d: d["workflow"][1].update(tool=[]), "pipeline .* must not be empty"),
        (lambda d: d["workflow"][1].update(loop={"in": "{{ xs }}", "iterator": ""}), "loop.iterator"),
        (lambda d: d["workflow"][1].update(loop={"iterator": "x"}), "loop.in is required"),
        (
            lambda d: d["workflow"][1].update(loop={"iterator": "x", "spec": {"mode": "cursor"}}),
            "loop.cursor",
        ),
        (
            lambda d: d["workflow"][1]["tool"].update(eval=[{"expr": "x", "do": "explode"}]),
            "tool.eval action",
        ),
        (
            lambda d: d["workflow"][1].update(spec={"on_error": [{"step": "ghost"}]}),
            "'ghost' is not a defined",
        ),
    ],
)
def test_semantic_failures_are_422(mutate: Any, message: str) -> None:
    doc = valid()
    mutate(doc)
    with pytest.raises(Unprocessable, match=message):
        parse_playbook(doc)


def test_400_checks_run_before_422_checks() -> None:
    doc = valid()
    doc["apiVersion"] = "wrong"
    doc["workflow"][1].pop("tool")
    with pytest.raises(InvalidArgument):
        parse_playbook(doc)


def test_arcs_to_end_need_an_end_step() -> None:
    doc = valid()
    doc["workflow"].pop()
    with pytest.raises(Unprocessable, match="next target 'end' is not a defined step"):
        parse_playbook(doc)


def test_v10_api_version_and_extra_keys_are_accepted() -> None:
    doc = valid()
    doc.update(apiVersion="noetl.io/v10", vars={"a": 1}, executor={"x": 1}, spec={"y": 2})
    doc["metadata"]["version"] = "2.0"
    doc["workflow"][0]["output"] = {"store": "x"}
    assert parse_playbook(doc).api_version == "noetl.io/v10"


def test_the_four_next_shapes() -> None:
    doc = playbook_doc(
        [
            python_step(
                "start", next={"spec": {"mode": "inclusive"}, "arcs": [{"step": "a", "when": "{{ x }}"}]}
            ),
            python_step(
                "a", next=[{"step": "b", "args": {"k": 1}}, {"step": "c"}], spec={"next_mode": "inclusive"}
            ),
            python_step("b", next=["c", "d"]),
            python_step("c", next="d"),
            python_step("d"),
        ]
    )
    steps = parse_playbook(doc).by_name
    assert steps["start"].next is not None and steps["start"].next.mode == "inclusive"
    assert steps["start"].next.arcs[0].when == "{{ x }}"
    assert steps["a"].next is not None and steps["a"].next.mode == "inclusive"
    assert steps["a"].next.arcs[0].args == {"k": 1}
    assert steps["b"].next is not None and [a.step for a in steps["b"].next.arcs] == ["c", "d"]
    assert steps["c"].next is not None and steps["c"].next.arcs[0].step == "d"
    assert steps["d"].next is None and steps["d"].is_terminal


def test_targets_list_defaults_to_exclusive() -> None:
    doc = playbook_doc(
        [python_step("start", next=[{"step": "a"}, {"step": "b"}]), python_step("a"), python_step("b")]
    )
    next_ = parse_playbook(doc).by_name["start"].next
    assert next_ is not None and next_.mode == "exclusive"


def test_workbook_tool_is_replaced_and_inputs_merged() -> None:
    doc = playbook_doc(
        [python_step("start", tool={"kind": "workbook", "name": "calc", "input": {"a": "{{ x }}"}})],
        workbook=[
            {
                "name": "calc",
                "tool": {"kind": "python", "input": {"a": None, "b": 2}, "code": "c"},
                "assert": {},
            }
        ],
    )
    tool = parse_playbook(doc).by_name["start"].tool
    assert tool.kind == "python"
    assert getattr(tool, "input", None) == {"a": "{{ x }}", "b": 2}


def test_pipelines_are_kept_as_task_sequences() -> None:
    doc = playbook_doc(
        [
            python_step(
                "start",
                tool=[
                    {"name": "fetch", "kind": "http", "url": "u"},
                    {"t2": {"kind": "python"}},
                    {"kind": "noop"},
                ],
            )
        ]
    )
    step = parse_playbook(doc).by_name["start"]
    assert step.tool_kind == "task_sequence"
    assert [task.label for task in getattr(step.tool, "tasks", ())] == ["fetch", "t2", "task_2"]


def test_tool_input_alias_args() -> None:
    doc = playbook_doc([python_step("start", tool={"kind": "python", "args": {"a": 1}, "code": "x"})])
    tool = parse_playbook(doc).by_name["start"].tool
    assert getattr(tool, "input", None) == {"a": 1}
    assert "args" not in getattr(tool, "config", {})


def test_the_document_is_not_mutated() -> None:
    doc = valid()
    before = copy.deepcopy(doc)
    parse_playbook(doc)
    assert doc == before


def test_broken_fixture_is_rejected_with_tool_required() -> None:
    doc = load_fixture("broken_playbooks/should_error_tool_is_required.yaml")
    with pytest.raises(InvalidArgument, match=r"tool.*required"):
        parse_playbook(doc)


@pytest.mark.parametrize(
    "fixture",
    [
        "hello_world/hello_world.yaml",
        "simple_python.yaml",
        "test_args_passing.yaml",
        "test_end_with_action.yaml",
        "control_flow_workbook/control_flow_workbook.yaml",
        "fanout_reduce/fanout_reduce_phase6.yaml",
        "pagination/basic/test_pagination_basic.yaml",
        "pagination/offset/test_pagination_offset.yaml",
        "pagination/pipeline/test_pipeline_simple.yaml",
        "vars_test/test_vars_simple.yaml",
        "duckdb_test.yaml",
        "playbook_composition/playbook_composition.yaml",
        "playbook_composition/user_profile_scorer.yaml",
        "broken_sql.yaml",
    ],
)
def test_every_valid_fixture_parses(fixture: str) -> None:
    assert parse_playbook(load_fixture(fixture)).by_name["start"]
