"""The result store's pure parts: ttl and reference parsing, the worker's preview, and how the
engine reads an externalised result once the orchestrator has read it back (dsl.md §9.12)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from kernel.errors import InvalidArgument
from language.result_refs import ResultRef, parse_ref, result_reference
from language.templating import Renderer
from services.execution.engine.records import EventRecord
from services.execution.engine.results import (
    hydrated,
    result_accessors,
    template_view,
)
from services.execution.results.service import checked_scope, checked_store, ttl_seconds
from tests.unit.engine_harness import Run, playbook_doc
from worker.results import preview

RENDERER = Renderer()
URI = "http://gateway/api/result/resolve?ref=x"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800),
        ("1h", 3600),
        ("2d", 172_800),
        ("1w", 604_800),
        ("1y", 31_536_000),
        ("45s", 45),
        ("3600", 3600),
        (" 90 ", 90),
        ("1000y", 31_536_000_000),
    ],
)
def test_ttl_forms(text: str, seconds: int) -> None:
    assert ttl_seconds(text) == seconds


@pytest.mark.parametrize("text", [None, "forever"])
def test_no_ttl_and_forever_never_expire(text: str | None) -> None:
    assert ttl_seconds(text) is None


@pytest.mark.parametrize(
    "text", ["", "0", "0m", "1.5h", "-5", "10x", "1H", "1 h", "hour", "1001y", "Forever"]
)
def test_a_bad_ttl_is_named_in_the_error(text: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ttl_seconds(text)
    assert caught.value.detail == (
        f"Invalid ttl: {text}. Use a number of seconds, or a count with s, m, h, d, w or y "
        "(30m, 1h, 2d, 1y), or forever"
    )


def test_scope_and_store_checks_use_the_contract_messages() -> None:
    assert checked_scope(None) == "execution"
    assert checked_scope("permanent") == "permanent"
    assert [checked_store(tier) for tier in (None, "memory", "s3", "eventlog", "db")] == ["db"] * 5
    with pytest.raises(InvalidArgument) as scope:
        checked_scope("global")
    assert scope.value.detail == "Invalid scope: global. Use: step, execution, workflow, permanent"
    with pytest.raises(InvalidArgument) as store:
        checked_store("ftp")
    assert store.value.detail == "Invalid store tier: ftp"


def test_a_reference_round_trips_and_its_name_may_hold_slashes() -> None:
    ref = ResultRef(execution_id=612400000000000001, name="fetch/page", result_id=612400000000000901)
    assert ref.uri == "noetl://execution/612400000000000001/result/fetch/page/612400000000000901"
    assert parse_ref(ref.uri) == ref
    assert parse_ref(f"  {ref.uri}\n") == ref


@pytest.mark.parametrize(
    "text",
    [
        "",
        "noetl://execution/1/result/name",
        "noetl://execution/x/result/name/2",
        "noetl://execution/1/result//2",
        "noetl://execution/1/results/name/2",
        "s3://bucket/key",
        "noetl://execution/99999999999999999999/result/name/2",
    ],
)
def test_a_malformed_reference_is_named_in_the_error(text: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_ref(text)
    assert caught.value.detail == (
        f"Invalid ref: {text!r}. Expected noetl://execution/<execution_id>/result/<name>/<result_id>"
    )


def test_the_preview_keeps_five_of_each_level_three_levels_deep() -> None:
    data = {f"k{i}": {"deep": {"deeper": {"deepest": 1}}, "items": list(range(9))} for i in range(8)}
    data["k0"]["text"] = "x" * 300
    shown = preview(data)
    assert list(shown) == ["k0", "k1", "k2", "k3", "k4"]
    assert shown["k0"]["deep"] == {"deeper": "..."}
    assert shown["k0"]["items"] == [0, 1, 2, 3, 4]
    assert shown["k0"]["text"] == "x" * 200 + "..."
    assert preview([[[[1]]]]) == [[["..."]]]
    assert preview("short") == "short"


REFERENCE: dict[str, Any] = {
    "ref": "noetl://execution/612400000000000001/result/big/612400000000000901",
    "store": "db",
    "scope": "execution",
    "bytes": 123,
    "sha256": "ab" * 32,
    "preview": {"items": [{"n": 0}]},
}


def call_done(reference: Mapping[str, Any]) -> EventRecord:
    """A `call.done` as the event service stores an externalised result."""
    payload = {
        "command_id": 7,
        "call_index": 0,
        "result": {"status": "success", "reference": dict(reference), "context": {"status": "success"}},
    }
    return EventRecord(
        event_id=10,
        event_type="call.done",
        node_name="big",
        status="COMPLETED",
        context=payload,
        result={"status": "COMPLETED", "context": payload},
        meta={"command_id": 7},
        error=None,
        command_id=7,
        created_at=datetime.now(UTC),
    )


def render(template: str, context: Mapping[str, Any]) -> str:
    return RENDERER.render_text(template, context)


def test_a_hydrated_map_reads_as_inline_and_answers_the_accessors() -> None:
    record = call_done(REFERENCE)
    assert result_reference(record.context) == REFERENCE
    data = {"items": [{"n": 1}, {"n": 2}], "total": 2}
    again = hydrated(record, data, result_accessors(REFERENCE, URI))
    # The reference stays beside the data it names.
    assert again.result["context"]["result"]["reference"] == REFERENCE
    assert again.result["context"]["result"]["context"] == {"status": "success", "data": data}

    inline = template_view(data)
    view = template_view(again.result["context"]["result"]["context"]["data"])
    context = {"big": view, "inline": inline}
    assert render("{{ big.items | length }} {{ big.total }} {{ big.data.total }}", context) == "2 2 2"
    assert render("{{ big | length }} {{ inline | length }}", context) == "3 3"
    assert render("{{ big | tojson }}", context) == render("{{ inline | tojson }}", context)
    assert render("{% for item in big.items %}{{ item.n }}{% endfor %}", context) == "12"
    assert render("{{ big._ref }}|{{ big._store }}|{{ big._uri }}", context) == (
        f"{REFERENCE['ref']}|db|{URI}"
    )
    assert RENDERER.render_value("{{ big._preview }}", context) == {"items": [{"n": 0}]}
    # Inline results have no accessors.
    assert render("{{ inline._ref | default('none') }}", context) == "none"


def test_a_user_key_wins_over_an_accessor_of_the_same_name() -> None:
    again = hydrated(call_done(REFERENCE), {"_ref": "mine"}, result_accessors(REFERENCE, URI))
    view = template_view(again.result["context"]["result"]["context"]["data"])
    assert render("{{ big._ref }} {{ big._store }}", {"big": view}) == "mine db"


def test_a_hydrated_list_and_a_hydrated_query_result_answer_the_accessors() -> None:
    accessors = result_accessors(REFERENCE, URI)
    rows = hydrated(call_done(REFERENCE), [1, 2, 3], accessors)
    listed = template_view(rows.result["context"]["result"]["context"]["data"])
    query = hydrated(call_done(REFERENCE), {"columns": ["a"], "rows": [[1], [2]]}, accessors)
    table = template_view(query.result["context"]["result"]["context"]["data"])
    context = {"listed": listed, "table": table}
    assert (
        render("{{ listed | length }} {{ listed[2] }} {{ listed._ref }}", context)
        == f"3 3 {REFERENCE['ref']}"
    )
    assert render("{{ table | length }} {{ table.columns }} {{ table._store }}", context) == "2 ['a'] db"


EXTERNALISED = playbook_doc(
    [
        {"step": "start", "tool": {"kind": "python", "code": "result = {}"}, "next": "big"},
        {
            "step": "big",
            "tool": {"kind": "python", "code": "result = {}"},
            "set": {"ctx.count": "{{ output.items | length }}"},
            "next": {
                "spec": {"mode": "exclusive"},
                "arcs": [
                    {"step": "each", "when": "{{ big.items | length == 3 }}"},
                    {"step": "wrong"},
                ],
            },
        },
        {
            "step": "each",
            "loop": {"in": "{{ big.items }}", "iterator": "item", "spec": {"mode": "parallel"}},
            "tool": {
                "kind": "python",
                "input": {"name": "{{ item.name }}", "ref": "{{ big._ref }}", "count": "{{ count }}"},
                "code": "result = {}",
            },
            "next": "end",
        },
        {"step": "wrong", "tool": {"kind": "python", "code": "result = {}"}},
        {"step": "end", "tool": {"kind": "python", "code": "result = {}"}},
    ]
)


class ExternalisingRun(Run):
    """The harness with a worker that externalises `big`'s result and an orchestrator that reads
    it back from `stored` before folding, as `Orchestrator._hydrate` does."""

    def __init__(self, document: Mapping[str, Any], stored: dict[str, Any]) -> None:
        self.stored = stored
        super().__init__(document)

    def _fold(self, record: EventRecord) -> None:
        reference = result_reference(record.context)
        if reference is not None and record.event_type in ("call.done", "step.exit"):
            record = hydrated(record, self.stored[reference["ref"]], result_accessors(reference, URI))
        super()._fold(record)

    def succeed_by_reference(self, step: str, reference: Mapping[str, Any]) -> None:
        command = self.command(step)
        self.worker_event(command, "command.claimed", {"worker_id": "w1"})
        self.worker_event(command, "command.started", {})
        result = {"status": "success", "reference": dict(reference), "context": {"status": "success"}}
        self.worker_event(command, "call.done", {"call_index": 0, "result": result})
        self.worker_event(command, "step.exit", {"status": "COMPLETED", "result": result})
        self.trigger(self.worker_event(command, "command.completed", {"status": "success"}))


def test_routing_set_and_loops_read_an_externalised_result_as_if_inline() -> None:
    items = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    run = ExternalisingRun(EXTERNALISED, {REFERENCE["ref"]: {"items": items}})
    run.succeed(run.command("start"))
    run.succeed_by_reference("big", REFERENCE)

    assert ("step.skipped", "wrong") in run.server_events()
    updated = run.events_of("ctx.updated")
    assert updated and updated[0].context["values"] == {"count": 3}
    inputs = [c.context["input"] for c in run.open_commands() if c.step == "each"]
    assert inputs == [
        {"name": name, "ref": REFERENCE["ref"], "count": 3, "item": item, "_index": index, "_total": 3}
        for index, (name, item) in enumerate(zip("abc", items, strict=True))
    ]
    run.run_all({})
    assert run.terminal is not None and run.terminal.event_type == "playbook.completed"
