"""Request parsing that reproduces the reference's FastAPI/Pydantic behaviour (http-api.md §1.2, §1.3, §1.7).

- Bodies are JSON when `Content-Type` is `application/json` (or `application/*+json`) or absent.
- Ids and versions accept a JSON number or a numeric string; unknown fields are ignored;
  aliases are looked up in priority order (the first name present wins).
- Errors are collected across path, query and body and reported together as Pydantic error
  objects (`type`, `loc`, `msg`, `input`, `ctx` when Pydantic has one), like FastAPI does.
- A cross-field rule (`value_error`) is only checked when its fields parsed, as a Pydantic
  `model_validator(mode="after")` would be.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway_http.errors import RequestInvalid
from gateway_http.routes import Handler
from kernel.errors import InvalidArgument
from kernel.jsonutil import MAX_NESTING_DEPTH
from kernel.timeutil import as_utc

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)

_NUL_MESSAGE = "String should not contain the NUL character (\\u0000)"
_SURROGATE_MESSAGE = "String should not contain a lone surrogate (\\ud800-\\udfff): it is not valid Unicode"
_DEPTH_MESSAGE = f"JSON nested deeper than {MAX_NESTING_DEPTH} levels"
# A lone surrogate can only arrive escaped (raw, it is invalid UTF-8); pairs also match, harmlessly.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# More digits than any bound of this API has (int64 is 19).
_MAX_INT_DIGITS = 40
_INTEGER_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*")
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
NOT_AN_OBJECT = "Input should be a valid dictionary or object to extract fields from"
_FRACTION = "Input should be a valid integer, got a number with a fractional part"
_NOT_INTEGER_TEXT = "Input should be a valid integer, unable to parse string as an integer"
_NOT_NUMBER_TEXT = "Input should be a valid number, unable to parse string as a number"


class _Invalid(Exception):
    """One value failed to parse; the caller knows where it came from."""

    def __init__(self, kind: str, msg: str, ctx: dict[str, Any] | None = None) -> None:
        super().__init__(msg)
        self.kind = kind
        self.msg = msg
        self.ctx = ctx


def error_item(
    kind: str, loc: list[str | int], msg: str, value: Any, ctx: dict[str, Any] | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {"type": kind, "loc": loc, "msg": msg, "input": value}
    if ctx is not None:
        item["ctx"] = ctx
    return item


def _parse_int(value: Any, minimum: int = INT64_MIN, maximum: int = INT64_MAX) -> int:
    """Pydantic's lax `int`: a JSON integer, an integral float or a decimal string, within bounds.

    Raises:
        _Invalid: with the Pydantic error type and message.
    """
    if isinstance(value, bool):
        raise _Invalid("int_type", "Input should be a valid integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not value.is_integer():
            raise _Invalid("int_from_float", _FRACTION)
        number = int(value)
    elif isinstance(value, str):
        if not _INTEGER_TEXT.fullmatch(value):
            raise _Invalid("int_parsing", _NOT_INTEGER_TEXT)
        text = value.strip()
        if len(text.lstrip("+-").lstrip("0")) > _MAX_INT_DIGITS:
            # Past every bound here; `int()` would refuse it anyway beyond 4300 digits.
            number = minimum - 1 if text.startswith("-") else maximum + 1
        else:
            number = int(text)
    else:
        raise _Invalid("int_type", "Input should be a valid integer")
    if number < minimum:
        msg = f"Input should be greater than or equal to {minimum}"
        raise _Invalid("greater_than_equal", msg, {"ge": minimum})
    if number > maximum:
        raise _Invalid("less_than_equal", f"Input should be less than or equal to {maximum}", {"le": maximum})
    return number


def _parse_float(value: Any) -> float:
    """Pydantic's lax `float`: a JSON number or a numeric string.

    Raises:
        _Invalid: with the Pydantic error type and message.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Invalid("float_type", "Input should be a valid number")
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise _Invalid("float_parsing", _NOT_NUMBER_TEXT) from None
    return float(value)


def parse_id(text: str) -> int | None:
    """An id from a path segment, or None when it is not one (for routes that answer 404 then)."""
    try:
        return _parse_int(text)
    except _Invalid:
        return None


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    if isinstance(value, str | int | float):
        raise _Invalid("bool_parsing", "Input should be a valid boolean, unable to interpret input")
    raise _Invalid("bool_type", "Input should be a valid boolean")


class Problems:
    """Validation errors of one request, from every source, raised together by `check`."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(
        self, kind: str, loc: list[str | int], msg: str, value: Any, ctx: dict[str, Any] | None = None
    ) -> None:
        self.items.append(error_item(kind, loc, msg, value, ctx))

    def check(self) -> None:
        """Raises RequestInvalid when anything was reported."""
        if self.items:
            raise RequestInvalid(self.items)

    def path_id(self, request: Request, name: str) -> int:
        """A path parameter that must be an id; 0 after reporting a problem."""
        raw = request.path_params[name]
        try:
            return _parse_int(raw)
        except _Invalid as bad:
            self.add(bad.kind, ["path", name], bad.msg, raw, bad.ctx)
            return 0

    def query(self, request: Request) -> Fields:
        return Fields(request.query_params, "query", self)

    def body(self, body: Any) -> Fields:
        """Fields of a body that must be a JSON object (anything else is reported here)."""
        fields = Fields(body if isinstance(body, dict) else {}, "body", self)
        if not isinstance(body, dict):
            # After creating `fields`, so that its cross-field rules see this failure.
            self.add("model_attributes_type", ["body"], NOT_AN_OBJECT, body)
        return fields


class Fields:
    """Typed reads from one source (`body` or `query`); failures go to the shared `Problems`.

    Getters for required values return a placeholder after reporting, so callers stay typed;
    `Problems.check()` must run before any value is used. `path` locates a nested object
    (`("events", 0)` for the first item of a list), as Pydantic's `loc` does.
    """

    def __init__(
        self, source: Mapping[str, Any], where: str, problems: Problems, path: tuple[str | int, ...] = ()
    ) -> None:
        self._source = source
        self._where = where
        self._loc: list[str | int] = [where, *path]
        self._problems = problems
        self._reported_before = len(problems.items)

    def _find(self, names: tuple[str, ...]) -> tuple[str, Any] | None:
        for name in names:
            if name in self._source:
                return name, self._source[name]
        return None

    def _report(self, bad: _Invalid, name: str | int, value: Any, *inner: str | int) -> None:
        self._problems.add(bad.kind, [*self._loc, name, *inner], bad.msg, value, bad.ctx)

    def _missing(self, names: tuple[str, ...]) -> None:
        whole = dict(self._source) if self._where == "body" else None
        self._problems.add("missing", [*self._loc, names[0]], "Field required", whole)

    def text(self, *names: str) -> str | None:
        found = self._find(names)
        if found is None or found[1] is None:
            return None
        name, value = found
        if not isinstance(value, str):
            self._report(_Invalid("string_type", "Input should be a valid string"), name, value)
            return None
        if "\x00" in value:  # only a query can still carry one: bodies were checked in read_json
            self._report(_Invalid("string_nul", _NUL_MESSAGE), name, value)
            return None
        return value

    def required_text(self, *names: str) -> str:
        found = self._find(names)
        if found is None:
            self._missing(names)
            return ""
        name, value = found
        if not isinstance(value, str):
            self._report(_Invalid("string_type", "Input should be a valid string"), name, value)
            return ""
        if "\x00" in value:
            self._report(_Invalid("string_nul", _NUL_MESSAGE), name, value)
            return ""
        return value

    def identifier(self, *names: str) -> int | None:
        found = self._find(names)
        if found is None or found[1] is None:
            return None
        return self._int(found[0], found[1], INT64_MIN, INT64_MAX)

    def required_identifier(self, *names: str) -> int:
        found = self._find(names)
        if found is None:
            self._missing(names)
            return 0
        return self._int(found[0], found[1], INT64_MIN, INT64_MAX) or 0

    def version(self, name: str, *, latest: bool) -> int | None:
        """A catalog version; with `latest`, the string "latest" means "no pin" (None)."""
        value = self._source.get(name)
        if value is None or (latest and value == "latest"):
            return None
        return self._int(name, value, INT32_MIN, INT32_MAX)

    def number(self, name: str, default: int, *, minimum: int, maximum: int = INT64_MAX) -> int:
        """A bounded integer with a default (paging parameters)."""
        value = self._source.get(name)
        if value is None:
            return default
        parsed = self._int(name, value, minimum, maximum)
        return default if parsed is None else parsed

    def _int(self, name: str, value: Any, minimum: int, maximum: int) -> int | None:
        try:
            return _parse_int(value, minimum, maximum)
        except _Invalid as bad:
            self._report(bad, name, value)
            return None

    def flag(self, name: str, default: bool) -> bool:
        value = self._source.get(name)
        if value is None:
            return default
        try:
            return _parse_bool(value)
        except _Invalid as bad:
            self._report(bad, name, value)
            return default

    def mapping(self, *names: str) -> dict[str, Any] | None:
        found = self._find(names)
        if found is None or found[1] is None:
            return None
        name, value = found
        if not isinstance(value, dict):
            self._report(_Invalid("dict_type", "Input should be a valid dictionary"), name, value)
            return None
        return value

    def strings(self, name: str) -> list[str]:
        value = self._source.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            self._report(_Invalid("list_type", "Input should be a valid list"), name, value)
            return []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self._report(_Invalid("string_type", "Input should be a valid string"), name, item, index)
        return [item for item in value if isinstance(item, str)]

    def value_error(self, message: str) -> None:
        """A failed cross-field rule, reported only when every field of this source parsed."""
        if len(self._problems.items) == self._reported_before:
            # Pydantic keeps the ValueError in ctx; FastAPI's encoder turns it into `{}`.
            whole = dict(self._source)
            self._problems.add(
                "value_error", list(self._loc), f"Value error, {message}", whole, {"error": {}}
            )

    def has(self, name: str) -> bool:
        return name in self._source

    def non_blank_text(self, name: str) -> str:
        """A required string with something besides whitespace (Pydantic's `min_length=1` report)."""
        value = self.required_text(name)
        if name in self._source and isinstance(self._source[name], str) and not value.strip():
            ctx = {"min_length": 1}
            self._report(
                _Invalid("string_too_short", "String should have at least 1 character", ctx), name, value
            )
        return value

    def real(self, name: str) -> float | None:
        value = self._source.get(name)
        if value is None:
            return None
        try:
            return _parse_float(value)
        except _Invalid as bad:
            self._report(bad, name, value)
            return None

    def timestamp(self, name: str) -> datetime | None:
        """An ISO 8601 / RFC 3339 string as UTC; an offset-less value is UTC already (§1.5)."""
        text = self.text(name)
        if text is None:
            return None
        try:
            return as_utc(datetime.fromisoformat(text))
        except ValueError:
            msg = "Input should be a valid datetime, unable to parse string as a datetime"
            self._report(_Invalid("datetime_parsing", msg), name, text)
            return None

    def ids(self, name: str) -> list[int]:
        """A required, non-empty list of ids (`list[int] = Field(min_length=1)`)."""
        items = self._list(name)
        if items is None:
            return []
        ids: list[int] = []
        for index, item in enumerate(items):
            try:
                ids.append(_parse_int(item))
            except _Invalid as bad:
                self._report(bad, name, item, index)
        return ids

    def objects(self, name: str) -> list[Fields]:
        """A required, non-empty list of JSON objects, each read through its own `Fields`."""
        items = self._list(name)
        if items is None:
            return []
        found: list[Fields] = []
        for index, item in enumerate(items):
            if isinstance(item, dict):
                found.append(Fields(item, self._where, self._problems, (*self._loc[1:], name, index)))
            else:
                self._report(_Invalid("model_attributes_type", NOT_AN_OBJECT), name, item, index)
        return found

    def _list(self, name: str) -> list[Any] | None:
        """A required list with at least one item; None after reporting why not."""
        if name not in self._source:
            self._missing((name,))
            return None
        value = self._source[name]
        if not isinstance(value, list):
            self._report(_Invalid("list_type", "Input should be a valid list"), name, value)
            return None
        if not value:
            ctx = {"field_type": "List", "min_length": 1, "actual_length": 0}
            msg = "List should have at least 1 item after validation, not 0"
            self._report(_Invalid("too_short", msg, ctx), name, value)
            return None
        return value


async def read_json(request: Request, *, required: bool = True) -> Any:
    """The request body as parsed JSON (`{}` for an empty optional body).

    Raises:
        RequestInvalid: empty required body, non-JSON content type, malformed JSON, nesting deeper
            than `MAX_NESTING_DEPTH`, a NUL character or a lone surrogate in a string.
        InvalidArgument: a body that is not UTF-8/16/32 text (FastAPI's 400, naming the byte).
        PayloadTooLarge: a body over the route's limit (`gateway_http.body_limits`).
    """
    raw = await request.body()
    if not raw:
        if required:
            raise RequestInvalid([error_item("missing", ["body"], "Field required", None)])
        return {}
    content_type = request.headers.get("content-type")
    if content_type is not None and not _is_json(content_type):
        raise RequestInvalid(
            [error_item("model_attributes_type", ["body"], NOT_AN_OBJECT, raw.decode("utf-8", "replace"))]
        )
    try:
        parsed = json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise RequestInvalid(
            [error_item("json_invalid", ["body", exc.pos], "JSON decode error", {}, {"error": exc.msg})]
        ) from None
    except _NonFinite as exc:
        # Python's parser accepts NaN/Infinity, which can be neither stored nor echoed back.
        position = raw.find(exc.token.encode())
        raise RequestInvalid(
            [error_item("json_invalid", ["body", position], "JSON decode error", {}, {"error": str(exc)})]
        ) from None
    except UnicodeDecodeError as exc:
        raise InvalidArgument(
            f"There was an error parsing the body: not valid {exc.encoding.upper()} (byte "
            f"0x{exc.object[exc.start]:02x} at position {exc.start}: {exc.reason})"
        ) from None
    except RecursionError:
        raise RequestInvalid([error_item("json_invalid", ["body"], _DEPTH_MESSAGE, {})]) from None
    except ValueError as exc:  # an integer literal past Python's 4300-digit limit
        raise RequestInvalid(
            [error_item("json_invalid", ["body", 0], "JSON decode error", {}, {"error": str(exc)})]
        ) from None
    # Skipped unless the body could hold a problem: U+0000 and lone surrogates arrive escaped, and
    # nesting needs as many brackets as levels.
    if (
        b"\\u0000" in raw
        or _SURROGATE_ESCAPE.search(raw)
        or raw.count(b"[") + raw.count(b"{") > MAX_NESTING_DEPTH
    ):
        problems = Problems()
        _report_text(parsed, ["body"], problems)
        problems.check()
    return parsed


def address_checked(handler: Handler) -> Handler:
    """`handler` behind a check that refuses a NUL character in a path parameter with 422 naming
    it (see `_report_text`); bodies get the same check in `read_json`, query values in `Fields`."""

    async def checked(request: Request) -> Response:
        _check_address(request)
        return await handler(request)

    checked.__name__ = getattr(handler, "__name__", "checked")
    return checked


def _check_address(request: Request) -> None:
    problems = Problems()
    for name, value in request.path_params.items():
        _report_text(value, ["path", name], problems)
    problems.check()


def _report_text(value: Any, loc: list[str | int], problems: Problems, depth: int = 0) -> None:
    """What no service can take, refused at the edge so that no route answers 500 after part of the
    work is done: U+0000 (Postgres cannot store it in text or jsonb), a lone surrogate (no UTF-8
    form), and nesting past `MAX_NESTING_DEPTH` (the services' JSON codec stops at 255 levels)."""
    if depth > MAX_NESTING_DEPTH:
        problems.add("json_too_deep", loc, _DEPTH_MESSAGE, "...")
    elif isinstance(value, str):
        _report_string(value, loc, problems)
    elif isinstance(value, dict):
        for key, item in value.items():
            where = [*loc, _printable(key)]
            _report_string(key, where, problems)
            _report_text(item, where, problems, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _report_text(item, [*loc, index], problems, depth + 1)


def _report_string(value: str, loc: list[str | int], problems: Problems) -> None:
    if "\x00" in value:
        problems.add("string_nul", loc, _NUL_MESSAGE, value)
    if _printable(value) is not value:
        problems.add("string_unicode", loc, _SURROGATE_MESSAGE, _printable(value))


def _printable(text: str) -> str:
    """`text` itself when it has a UTF-8 form, else with each lone surrogate written as `\\udxxx`."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class _NonFinite(ValueError):
    def __init__(self, token: str) -> None:
        super().__init__(f"Out of range float values are not JSON compliant: {token}")
        self.token = token


def _reject_constant(token: str) -> Any:
    raise _NonFinite(token)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))
