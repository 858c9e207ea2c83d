"""Templating semantics of dsl.md §8: undefined handling, filters, typed rendering, conditions."""

from __future__ import annotations

from typing import Any

import pytest

from language.templating import Renderer, TemplateError

R = Renderer()
CTX: dict[str, Any] = {
    "n": 5,
    "ratio": 4.0,
    "name": "Alice",
    "flag": True,
    "nothing": None,
    "items": [1, 2, 3],
    "user": {"id": 7, "email": "a@x.io", "note": None, "tags": ["a", "b"]},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ n }}", 5),
        ("{{ ratio }}", 4.0),
        ("{{ name }}", "Alice"),
        ("{{ flag }}", True),
        ("{{ user }}", {"id": 7, "email": "a@x.io", "note": None, "tags": ["a", "b"]}),
        ("{{ items }}", [1, 2, 3]),
        ("{{ user.tags }}", ["a", "b"]),
        ("{{ '007' }}", 7),
        ("{{ '-2.5' }}", -2.5),
        ("true", True),
        ("False", False),
        ("null", None),
        ("None", None),
        ("", None),
        ("{{ missing }}", None),
        ("  {{ n }}  ", 5),
        ('{"a": [1, 2]}', {"a": [1, 2]}),
        ("[{{ n }}, {{ n }}]", [5, 5]),
        ("Hello {{ name }}", "Hello Alice"),
        ("{{ name }} ", "Alice "),
        ("1_000", "1_000"),
        ("inf", "inf"),
        ("{{ user.id }}-{{ n }}", "7-5"),
    ],
)
def test_typed_rendering(template: str, expected: Any) -> None:
    assert R.render_value(template, CTX) == expected


def test_typed_rendering_keeps_json_types_exact() -> None:
    assert type(R.render_value("{{ n }}", CTX)) is int
    assert type(R.render_value("{{ ratio }}", CTX)) is float
    assert R.render_value("{{ 12345678901234567890 }}", CTX) == pytest.approx(1.2345678901234567e19)


def test_a_whole_expression_with_an_operator_keeps_its_value() -> None:
    # Rendered text in Python notation is read back through `tojson` of the whole expression.
    assert R.render_value("{{ seen + [letter] }}", {"seen": ["a"], "letter": "b"}) == ["a", "b"]


def test_render_value_is_recursive_and_renders_keys_as_text() -> None:
    value = {"{{ name }}_id": "{{ user.id }}", "list": ["{{ flag }}", 3, None, {"deep": "{{ n }}"}], "n": 2}
    assert R.render_value(value, CTX) == {"Alice_id": 7, "list": [True, 3, None, {"deep": 5}], "n": 2}
    assert R.render_value({"{{ n }}": 1}, CTX) == {"5": 1}


def test_chainable_undefined_and_null_is_undefined() -> None:
    assert R.render_text("[{{ a.b.c }}]", CTX) == "[]"
    assert R.render_value("{{ a.b.c | default('x') }}", CTX) == "x"
    assert R.render_value("{{ nothing is defined }}", CTX) is False
    assert R.render_value("{{ user.note is defined }}", CTX) is False
    assert R.render_value("{{ user.note is none }}", CTX) is False
    assert R.render_value("{{ user.id is defined }}", CTX) is True
    assert R.render_value("{{ missing is undefined }}", CTX) is True
    assert R.render_text("[{{ nothing }}]", CTX) == "[]"


def test_default_fires_on_none_and_undefined() -> None:
    assert R.render_value("{{ nothing | default(3) }}", CTX) == 3
    assert R.render_value("{{ user.note | default('n/a') }}", CTX) == "n/a"
    assert R.render_value("{{ missing | default }}", CTX) is None
    assert R.render_value("{{ n | default(3) }}", CTX) == 5
    assert R.render_value("{{ x | default({'name': 'T', 'age': 30}) }}", CTX) == {"name": "T", "age": 30}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ '3.7' | int }}", 3),
        ("{{ 3.7 | int }}", 3),
        ("{{ '2' | float }}", 2.0),
        ("{{ n | string }}", 5),
        ("{{ name | lower }}-{{ name | upper }}", "alice-ALICE"),
        ("{{ '  pad ' | trim }}|", "pad|"),
        ("{{ 'a b c' | split | length }}", 3),
        ("{{ 'a,b' | split(',') | join('+') }}", "a+b"),
        ("{{ items | join }}", 123),
        ("{{ items | first }}/{{ items | last }}", "1/3"),
        ("{{ user | keys | join(',') }}", "id,email,note,tags"),
        ("{{ user | get('email') }}", "a@x.io"),
        ("{{ user | get('nope') | default('d') }}", "d"),
        ("{{ user | items | length }}", 4),
        ("{{ user | tojson }}", {"id": 7, "email": "a@x.io", "note": None, "tags": ["a", "b"]}),
        ("{{ '{\"k\": 1}' | fromjson }}", {"k": 1}),
        ("{{ name | b64encode }}", "QWxpY2U="),
        ("{{ 'QWxpY2U=' | b64decode }}", "Alice"),
        ("{{ name | safe }}", "Alice"),
        ("{{ items | sum }}", 6),
        ("{{ items | map('string') | join('-') }}", "1-2-3"),
        ("{{ ratio | round }}", 4.0),
        ("{% if n > 3 %}big{% else %}small{% endif %}", "big"),
        ("{% for i in items %}{{ i }};{% endfor %}", "1;2;3;"),
        ("{{ name is string }}", True),
        ("{{ n is number }}", True),
        ("{{ flag is number }}", False),
        ("{{ items is sequence }}", True),
        ("{{ name is sequence }}", False),
        ("{{ user is mapping }}", True),
        ("{{ items is mapping }}", False),
    ],
)
def test_filters_and_tests(template: str, expected: Any) -> None:
    assert R.render_value(template, CTX) == expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("{{ n == 5 }}", True),
        ("n == 5", True),
        ("n == 6", False),
        ("{{ name }}", True),
        ("{{ name and n }}", True),
        ("{{ '' }}", False),
        ("{{ 'false' }}", False),
        ("{{ 'False' }}", False),
        ("{{ 0 }}", False),
        ("{{ 'no' }}", False),
        ("{{ 'None' }}", False),
        ("{{ 'null' }}", False),
        ("{{ 'off' }}", False),
        ("{{ {} }}", False),
        ("{{ [] }}", False),
        ("{{ missing }}", False),
        ("{{ items }}", True),
        ("{{ 'yes' }}", True),
        ("{{ event.name == 'step.exit' }}", False),
    ],
)
def test_condition_truthiness(expr: str, expected: bool) -> None:
    assert R.render_condition(expr, CTX) is expected


def test_python_method_calls_are_render_errors() -> None:
    with pytest.raises(TemplateError, match="unknown method: get"):
        R.render_value("{{ user.get('id') }}", CTX)
    with pytest.raises(TemplateError, match="unknown method: items"):
        R.render_condition("{{ user.items() }}", CTX)
    # A dot followed by a parenthesis inside a string literal is not a call.
    assert R.render_value("{{ 'x.y(z)' }}", CTX) == "x.y(z)"


def test_render_errors_raise_template_error() -> None:
    with pytest.raises(TemplateError):
        R.render_value("{{ n | nosuchfilter }}", CTX)
    with pytest.raises(TemplateError):
        R.render_value("{{ 'abc' | int }}", CTX)
    with pytest.raises(TemplateError):
        R.render_condition("{{ n + }}", CTX)


def test_keychain_templates_are_left_verbatim() -> None:
    header = "Bearer {{ keychain.api.token }}"
    assert R.render_value({"Authorization": header, "n": "{{ n }}"}, CTX) == {"Authorization": header, "n": 5}


def test_deferred_rendering_keeps_unresolved_paths() -> None:
    value = {"a": "{{ n }}", "b": "{{ later.value }}", "c": "{{ user.missing }}"}
    assert R.render_value(value, CTX, defer_unresolved=True) == {
        "a": 5,
        "b": "{{ later.value }}",
        "c": "{{ user.missing }}",
    }


def test_a_query_result_is_handed_on_as_its_rows() -> None:
    """Fixtures convention C6: `{{ step }}` of a SQL result set is its row list; its fields still answer."""
    from language.templating import Renderer
    from services.execution.engine.results import template_view

    rows = [{"name": "Alice", "age": 30}, {"name": "Charlie", "age": 35}]
    single = template_view({"columns": ["name", "age"], "rows": rows, "row_count": 2})
    piped = template_view(
        {"run_query": {"columns": ["name", "age"], "rows": rows, "row_count": 2}}, pipeline=True
    )
    renderer = Renderer()
    for view in (single, piped):
        assert renderer.render_value("{{ step }}", {"step": view}) == rows
        assert renderer.render_value("{{ step.row_count }}", {"step": view}) == 2
        assert renderer.render_value("{{ step.rows[1].name }}", {"step": view}) == "Charlie"
    assert renderer.render_value("{{ step.run_query.row_count }}", {"step": piped}) == 2
    two_tasks = template_view({"a": {"columns": [], "rows": []}, "b": {"x": 1}}, pipeline=True)
    assert isinstance(two_tasks, dict)
