"""Request parsing: FastAPI/Pydantic 422 shapes, id leniency, aliases (http-api.md §1.2, §1.3, §1.7)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.requests import Request
from starlette.types import Message

from gateway_http.errors import RequestInvalid
from gateway_http.validation import INT64_MAX, Problems, parse_id, read_json
from kernel.errors import InvalidArgument


def post(body: bytes, content_type: str | None = "application/json") -> Request:
    headers = [] if content_type is None else [(b"content-type", content_type.encode())]

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b""}
    return Request(scope, receive)


def get(query: str = "", path_params: dict[str, str] | None = None) -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [],
        "query_string": query.encode(),
        "path_params": path_params or {},
    }
    return Request(scope)


def reported(problems: Problems) -> list[dict[str, Any]]:
    with pytest.raises(RequestInvalid) as caught:
        problems.check()
    return caught.value.items


async def invalid_body(request: Request, *, required: bool = True) -> list[dict[str, Any]]:
    with pytest.raises(RequestInvalid) as caught:
        await read_json(request, required=required)
    return caught.value.items


# --- body reading -------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", None])
async def test_json_bodies_parse_with_json_or_no_content_type(content_type: str | None) -> None:
    assert await read_json(post(b'{"a": [1, "x"]}', content_type)) == {"a": [1, "x"]}


async def test_vendor_json_content_types_parse() -> None:
    assert await read_json(post(b"{}", "application/vnd.noetl+json")) == {}


async def test_other_content_types_are_422_with_the_raw_body_as_input() -> None:
    assert await invalid_body(post(b"content=x", "text/plain")) == [
        {
            "type": "model_attributes_type",
            "loc": ["body"],
            "msg": "Input should be a valid dictionary or object to extract fields from",
            "input": "content=x",
        }
    ]


@pytest.mark.parametrize("raw", [b'{"a": 1,}', b"{bad", b'{"a": "x"', b"[1 2]"])
async def test_malformed_json_is_json_invalid_with_the_decoder_position_and_message(raw: bytes) -> None:
    # FastAPI reports the standard library decoder's own position and message.
    with pytest.raises(json.JSONDecodeError) as decoder:
        json.loads(raw)
    assert await invalid_body(post(raw)) == [
        {
            "type": "json_invalid",
            "loc": ["body", decoder.value.pos],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": decoder.value.msg},
        }
    ]


async def test_nan_literals_are_refused_as_invalid_json() -> None:
    [item] = await invalid_body(post(b'{"x": NaN}'))
    assert item["type"] == "json_invalid"
    assert item["loc"] == ["body", 6]


async def test_an_empty_required_body_is_missing() -> None:
    assert await invalid_body(post(b"")) == [
        {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}
    ]


async def test_an_empty_optional_body_is_an_empty_object() -> None:
    assert await read_json(post(b""), required=False) == {}


async def test_undecodable_bytes_are_a_400() -> None:
    with pytest.raises(InvalidArgument, match="There was an error parsing the body"):
        await read_json(post(b'{"a": "\xff"}'))


def test_a_body_that_is_not_an_object_is_reported_once() -> None:
    problems = Problems()
    fields = problems.body([1, 2])
    assert fields.text("path") is None
    fields.value_error("Either 'path' or 'catalog_id' must be provided")
    assert reported(problems) == [
        {
            "type": "model_attributes_type",
            "loc": ["body"],
            "msg": "Input should be a valid dictionary or object to extract fields from",
            "input": [1, 2],
        }
    ]


# --- ids and numbers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (612400000000000001, 612400000000000001),
        ("612400000000000001", 612400000000000001),
        (" 42 ", 42),
        (7.0, 7),
    ],
)
def test_ids_accept_numbers_and_numeric_strings(value: Any, expected: int) -> None:
    problems = Problems()
    assert problems.body({"execution_id": value}).required_identifier("execution_id") == expected
    problems.check()


@pytest.mark.parametrize(
    ("value", "kind", "msg"),
    [
        ("abc", "int_parsing", "Input should be a valid integer, unable to parse string as an integer"),
        ("1.5", "int_parsing", "Input should be a valid integer, unable to parse string as an integer"),
        ("٣", "int_parsing", "Input should be a valid integer, unable to parse string as an integer"),
        (1.5, "int_from_float", "Input should be a valid integer, got a number with a fractional part"),
        (True, "int_type", "Input should be a valid integer"),
        ([1], "int_type", "Input should be a valid integer"),
    ],
)
def test_non_numeric_ids_are_422(value: Any, kind: str, msg: str) -> None:
    problems = Problems()
    problems.body({"catalog_id": value}).identifier("catalog_id")
    assert reported(problems) == [{"type": kind, "loc": ["body", "catalog_id"], "msg": msg, "input": value}]


def test_ids_beyond_int64_are_422_with_the_bound() -> None:
    problems = Problems()
    problems.body({"catalog_id": 2**63}).identifier("catalog_id")
    assert reported(problems) == [
        {
            "type": "less_than_equal",
            "loc": ["body", "catalog_id"],
            "msg": f"Input should be less than or equal to {INT64_MAX}",
            "input": 2**63,
            "ctx": {"le": INT64_MAX},
        }
    ]


def test_a_missing_required_id_reports_the_whole_body_as_input() -> None:
    problems = Problems()
    problems.body({"step": "s"}).required_identifier("execution_id")
    assert reported(problems) == [
        {"type": "missing", "loc": ["body", "execution_id"], "msg": "Field required", "input": {"step": "s"}}
    ]


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("latest", None), (3, 3), ("3", 3)])
def test_version_accepts_numbers_numeric_strings_and_latest(value: Any, expected: int | None) -> None:
    problems = Problems()
    assert problems.body({"version": value}).version("version", latest=True) == expected
    problems.check()


def test_latest_is_refused_where_not_documented() -> None:
    problems = Problems()
    problems.body({"version": "latest"}).version("version", latest=False)
    assert reported(problems)[0]["type"] == "int_parsing"


def test_path_ids_report_a_path_location() -> None:
    problems = Problems()
    assert problems.path_id(get(path_params={"execution_id": "abc"}), "execution_id") == 0
    assert reported(problems) == [
        {
            "type": "int_parsing",
            "loc": ["path", "execution_id"],
            "msg": "Input should be a valid integer, unable to parse string as an integer",
            "input": "abc",
        }
    ]


def test_parse_id_answers_none_for_anything_but_an_int64() -> None:
    assert parse_id("612400000000000001") == 612400000000000001
    assert parse_id("abc") is None
    assert parse_id(str(2**63)) is None


# --- query parameters ---------------------------------------------------------------------


def test_query_bounds_report_the_raw_text_and_the_bound() -> None:
    problems = Problems()
    query = problems.query(get("page=0&page_size=501"))
    query.number("page", 1, minimum=1)
    query.number("page_size", 100, minimum=10, maximum=500)
    assert reported(problems) == [
        {
            "type": "greater_than_equal",
            "loc": ["query", "page"],
            "msg": "Input should be greater than or equal to 1",
            "input": "0",
            "ctx": {"ge": 1},
        },
        {
            "type": "less_than_equal",
            "loc": ["query", "page_size"],
            "msg": "Input should be less than or equal to 500",
            "input": "501",
            "ctx": {"le": 500},
        },
    ]


def test_query_defaults_apply_when_absent() -> None:
    problems = Problems()
    query = problems.query(get())
    assert query.number("page_size", 100, minimum=10, maximum=500) == 100
    assert query.flag("include_events", True) is True
    assert query.text("event_type") is None
    problems.check()


@pytest.mark.parametrize(("text", "expected"), [("false", False), ("0", False), ("No", False), ("on", True)])
def test_query_flags_follow_pydantic_spellings(text: str, expected: bool) -> None:
    problems = Problems()
    assert problems.query(get(f"include_events={text}")).flag("include_events", not expected) is expected
    problems.check()


def test_an_uninterpretable_flag_is_422() -> None:
    problems = Problems()
    problems.query(get("full=maybe")).flag("full", False)
    assert reported(problems) == [
        {
            "type": "bool_parsing",
            "loc": ["query", "full"],
            "msg": "Input should be a valid boolean, unable to interpret input",
            "input": "maybe",
        }
    ]


# --- aliases, unknown fields, cross-field rules -------------------------------------------


def test_the_first_alias_present_wins_and_unknown_fields_are_ignored() -> None:
    problems = Problems()
    fields = problems.body(
        {
            "step": "a",
            "node_name": "b",
            "name": "x",
            "event_type": "y",
            "payload": {"p": 1},
            "context": {},
            "zzz": 1,
        }
    )
    assert fields.required_text("step", "node_name") == "a"
    assert fields.required_text("name", "event_type") == "x"
    assert fields.mapping("payload", "context") == {"p": 1}
    problems.check()


def test_an_alias_is_used_when_the_preferred_name_is_absent() -> None:
    problems = Problems()
    fields = problems.body({"node_name": "b", "event_type": "y", "context": {"c": 1}})
    assert fields.required_text("step", "node_name") == "b"
    assert fields.required_text("name", "event_type") == "y"
    assert fields.mapping("payload", "context") == {"c": 1}
    problems.check()


def test_a_wrongly_typed_alias_is_reported_under_the_name_sent() -> None:
    problems = Problems()
    problems.body({"context": [1]}).mapping("payload", "context")
    assert reported(problems) == [
        {
            "type": "dict_type",
            "loc": ["body", "context"],
            "msg": "Input should be a valid dictionary",
            "input": [1],
        }
    ]


def test_a_cross_field_rule_is_a_value_error_on_the_body() -> None:
    problems = Problems()
    fields = problems.body({"version": 2})
    fields.text("path")
    fields.value_error("Either 'path' or 'catalog_id' must be provided")
    assert reported(problems) == [
        {
            "type": "value_error",
            "loc": ["body"],
            "msg": "Value error, Either 'path' or 'catalog_id' must be provided",
            "input": {"version": 2},
            "ctx": {"error": {}},
        }
    ]


def test_a_cross_field_rule_is_skipped_when_a_field_failed() -> None:
    problems = Problems()
    fields = problems.body({"path": 5})
    fields.text("path")
    fields.value_error("Either 'path' or 'catalog_id' must be provided")
    assert [item["type"] for item in reported(problems)] == ["string_type"]


def test_errors_from_every_source_are_reported_together_in_order() -> None:
    problems = Problems()
    problems.path_id(get(path_params={"event_id": "x"}), "event_id")
    problems.body({"locality": 1}).required_text("worker_id")
    assert [item["loc"] for item in reported(problems)] == [["path", "event_id"], ["body", "worker_id"]]


def test_string_lists_report_each_bad_item() -> None:
    problems = Problems()
    assert problems.body({"capabilities": ["a", 2]}).strings("capabilities") == ["a"]
    assert reported(problems) == [
        {
            "type": "string_type",
            "loc": ["body", "capabilities", 1],
            "msg": "Input should be a valid string",
            "input": 2,
        }
    ]
