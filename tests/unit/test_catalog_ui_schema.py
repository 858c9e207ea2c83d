"""The workload form of a catalog entry: types inferred from defaults, document order kept."""

from __future__ import annotations

import json

from services.catalog.ui_schema import workload_form

PLAYBOOK = """\
metadata:
  name: greeter
workload:
  who: world
  count: 2
  ratio: 0.25
  loud: true
  nothing: null
  tags: [x, y]
  empty: []
  rows: [{id: 1}]
  db: {port: 5432, ssl: {mode: require}}
"""


def test_each_default_gives_its_type_and_nesting_is_kept() -> None:
    form = workload_form(PLAYBOOK, None, "tests/greeter")

    assert list(form.workload) == ["who", "count", "ratio", "loud", "nothing", "tags", "empty", "rows", "db"]
    assert form.schema == {
        "type": "object",
        "title": "greeter",
        "properties": {
            "who": {"type": "string", "default": "world"},
            "count": {"type": "integer", "default": 2},
            "ratio": {"type": "number", "default": 0.25},
            "loud": {"type": "boolean", "default": True},
            "nothing": {"type": ["string", "null"], "default": None},
            "tags": {"type": "array", "items": {"type": "string"}, "default": ["x", "y"]},
            "empty": {"type": "array", "items": {}, "default": []},
            "rows": {
                "type": "array",
                "items": {"type": "object", "properties": {"id": {"type": "integer"}}},
                "default": [{"id": 1}],
            },
            "db": {
                "type": "object",
                "properties": {
                    "port": {"type": "integer", "default": 5432},
                    "ssl": {
                        "type": "object",
                        "properties": {"mode": {"type": "string", "default": "require"}},
                    },
                },
            },
        },
        "required": [],
    }


def test_without_a_workload_or_a_name_the_form_is_empty_and_titled_by_path() -> None:
    form = workload_form("workflow: []\nworkload: [not, a, map]\n", None, "tests/bare")

    assert form.workload == {}
    assert form.schema == {"type": "object", "title": "tests/bare", "properties": {}, "required": []}


def test_content_that_does_not_parse_falls_back_to_the_stored_payload() -> None:
    payload = json.dumps(
        {"metadata": {"name": "imported", "description": "From elsewhere"}, "workload": {"n": 1}}
    )

    form = workload_form("key: [unclosed", payload, "tests/imported")

    assert form.workload == {"n": 1}
    assert form.schema["title"] == "imported"
    assert form.schema["description"] == "From elsewhere"
    assert workload_form("key: [unclosed", None, "tests/none").workload == {}
