"""Template rendering with the semantics of dsl.md §8: minijinja, typed values, conditions.

Values reach minijinja as plain Python objects. minijinja-py hands an undefined value to
Python filters and tests as `None`, exactly like a JSON null; that is what makes "a JSON null
is undefined" (§8.1) hold without copying the context: the custom `defined` test is false
and `default` fires for both, and top-level nulls are simply left out of the context.

Known limits of the binding, accepted: a null nested in a map prints as `None` when
interpolated into text (typed rendering still reads it as null); containers interpolated
into longer text print in Python notation; a float with an integral value that passes
through a custom filter comes back as an integer (`{{ 4.0 | default(1) }}` gives 4). No
finalizer is installed because it would do the same to every printed float.

Templates that reference `keychain` are returned verbatim for the worker to resolve (§8.5 D).
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, SupportsIndex, overload

import minijinja

_FALSY_CONDITIONS = frozenset({"", "false", "0", "no", "none", "null", "off", "{}", "[]"})
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_I64 = 1 << 63
_TAG = re.compile(r"\{\{(.*?)\}\}|\{%(.*?)%\}", re.DOTALL)
_STRING_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", re.DOTALL)
_METHOD_CALL = re.compile(r"(\w*)\s*\.\s*([A-Za-z_]\w*)\s*\(")
# minijinja's own loop helpers are the only method calls a template may make.
_ALLOWED_METHODS = frozenset({("loop", "cycle"), ("loop", "changed")})


class TemplateError(Exception):
    """A template failed to parse or render."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def has_template_syntax(text: str) -> bool:
    return ("{{" in text and "}}" in text) or ("{%" in text and "%}" in text)


def scoped_key(key: str) -> str:
    """Where a `set` key is written in the flat context (dsl.md §6.1)."""
    for prefix in ("ctx.", "iter.", "step."):
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def typed(text: str) -> Any:
    """The JSON value of a rendered text, rules 2-5 of dsl.md §8.3 (rule 1 needs the template)."""
    trimmed = text.strip()
    if trimmed in ("true", "True"):
        return True
    if trimmed in ("false", "False"):
        return False
    if _INT.fullmatch(trimmed):
        number = int(trimmed)
        # Like the reference's i64 parse: anything wider becomes a float.
        return number if -_I64 <= number < _I64 else float(number)
    if _FLOAT.fullmatch(trimmed):
        return float(trimmed)
    if trimmed in ("", "null", "None"):
        return None
    return text


class Renderer:
    """A shared, stateless renderer; safe to use from any number of passes."""

    def __init__(self) -> None:
        self._env = minijinja.Environment(
            undefined_behavior="chainable",
            pycompat=False,
            filters=_FILTERS,
            tests=_TESTS,
        )

    def render_text(self, template: str, ctx: Mapping[str, Any]) -> str:
        """Render `template` to text; a string without template syntax is returned as is.

        Raises:
            TemplateError: the template does not parse or fails to render.
        """
        if not has_template_syntax(template):
            return template
        _reject_method_calls(template)
        try:
            return self._env.render_str(template, **{k: v for k, v in ctx.items() if v is not None})
        except Exception as exc:
            # minijinja-py re-raises exceptions from Python filters unchanged; for a
            # caller every failure while rendering is the same render error.
            raise TemplateError(_first_line(exc)) from exc

    def render_value(self, value: Any, ctx: Mapping[str, Any], *, defer_unresolved: bool = False) -> Any:
        """Render a config/input/`set` value to a JSON value (dsl.md §8.3), recursively.

        Map keys are rendered as plain text. With `defer_unresolved`, a string whose template
        references a path missing from `ctx` is kept verbatim (pipeline tasks, §9.11).

        Raises:
            TemplateError: a template does not parse or fails to render.
        """
        if isinstance(value, str):
            if self.references_keychain(value) or (defer_unresolved and self._unresolved(value, ctx)):
                return value
            return self._render_string(value, ctx)
        if isinstance(value, Mapping):
            return {
                self._render_key(str(key), ctx, defer_unresolved): self.render_value(
                    item, ctx, defer_unresolved=defer_unresolved
                )
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.render_value(item, ctx, defer_unresolved=defer_unresolved) for item in value]
        return value

    def render_condition(self, expr: str, ctx: Mapping[str, Any]) -> bool:
        """Truthiness of a `when` condition (dsl.md §8.4).

        Raises:
            TemplateError: the condition does not parse or fails to render.
        """
        template = expr if has_template_syntax(expr) else f"{{{{ {expr} }}}}"
        return self.render_text(template, ctx).strip().lower() not in _FALSY_CONDITIONS

    def references_keychain(self, text: str) -> bool:
        return "keychain" in text and any(
            path == "keychain" or path.startswith("keychain.") for path in self._variables(text)
        )

    def _render_key(self, key: str, ctx: Mapping[str, Any], defer_unresolved: bool) -> str:
        if self.references_keychain(key) or (defer_unresolved and self._unresolved(key, ctx)):
            return key
        return self.render_text(key, ctx)

    def _render_string(self, template: str, ctx: Mapping[str, Any]) -> Any:
        rendered = self.render_text(template, ctx)
        trimmed = rendered.strip()
        if (trimmed.startswith("{") and trimmed.endswith("}")) or (
            trimmed.startswith("[") and trimmed.endswith("]")
        ):
            parsed = _parse_json(trimmed)
            if parsed is not _NOT_JSON:
                return parsed
            expr = _single_expression(template)
            if expr is not None:
                parsed = _parse_json(self.render_text(f"{{{{ ({expr}) | tojson }}}}", ctx))
                if parsed is not _NOT_JSON:
                    return parsed
        return typed(rendered)

    def _unresolved(self, text: str, ctx: Mapping[str, Any]) -> bool:
        return any(not _path_resolves(ctx, path) for path in self._variables(text))

    def _variables(self, text: str) -> frozenset[str]:
        return _undeclared(text)


# --- results that answer names besides their value -------------------------------------------

# A command's `render_context` key: step name -> `{accessors?, loop?}`, what the step's result
# answers by name besides its value (`_ref`, ... of an externalised result, dsl.md §9.12; a loop
# aggregate's `results` and `count`). JSON drops those names, so they travel beside the value.
RESULT_VIEWS = "_result_views"


class NamedList(list[Any]):
    """A list that also answers names, as `x.name` and `x['name']` in templates.

    minijinja looks a name up by item first, and hides attributes that start with `_`, so
    the accessors (`_ref`, ...) are answered by `__getitem__`.
    """

    def __init__(self, items: list[Any], fields: Mapping[str, Any]) -> None:
        super().__init__(items)
        self._fields = fields

    @overload
    def __getitem__(self, key: SupportsIndex) -> Any: ...
    @overload
    def __getitem__(self, key: slice) -> list[Any]: ...
    @overload
    def __getitem__(self, key: str) -> Any: ...
    def __getitem__(self, key: SupportsIndex | slice | str) -> Any:
        if isinstance(key, str):
            return self._fields[key]
        return super().__getitem__(key)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_fields"][name]
        except KeyError:
            raise AttributeError(name) from None


class FieldMap(dict[str, Any]):
    """A map that also answers `fields` without holding them as keys, so `{{ x | length }}`,
    loops and `tojson` read exactly as without them (and a key of the user's own wins)."""

    __slots__ = ("_fields",)

    def __init__(self, items: Mapping[str, Any], fields: Mapping[str, Any]) -> None:
        super().__init__(items)
        self._fields = fields

    def __missing__(self, key: str) -> Any:
        return self._fields[key]


def loop_fields(items: list[Any]) -> dict[str, Any]:
    """What a loop step's aggregate answers besides its items: the reference's object form."""
    return {"results": items, "count": len(items)}


def restore_views(render_context: Mapping[str, Any]) -> dict[str, Any]:
    """A shipped `render_context` whose step results answer their names again (`RESULT_VIEWS`)."""
    context = dict(render_context)
    views = context.pop(RESULT_VIEWS, None)
    for name, view in views.items() if isinstance(views, Mapping) else ():
        value = context.get(name)
        accessors = view.get("accessors") if isinstance(view, Mapping) else None
        fields = dict(accessors) if isinstance(accessors, Mapping) else {}
        if isinstance(value, list):
            loop = isinstance(view, Mapping) and view.get("loop") is True
            context[name] = NamedList(value, {**fields, **(loop_fields(value) if loop else {})})
        elif isinstance(value, Mapping) and fields:
            context[name] = FieldMap(value, fields)
    return context


# Variable analysis does not depend on filters or settings, so one plain environment serves it.
_ANALYSIS_ENV = minijinja.Environment()


@functools.lru_cache(maxsize=4096)
def _undeclared(text: str) -> frozenset[str]:
    if not has_template_syntax(text):
        return frozenset()
    try:
        return frozenset(_ANALYSIS_ENV.undeclared_variables_in_str(text, nested=True))
    except Exception:
        # An unparsable fragment is reported when it is rendered; here it references nothing.
        return frozenset()


def _path_resolves(ctx: Mapping[str, Any], path: str) -> bool:
    root, *rest = path.split(".")
    if root not in ctx:
        return False
    current = ctx[root]
    for segment in rest:
        if not isinstance(current, Mapping):
            return True
        if segment not in current:
            return False
        current = current[segment]
    return True


def _single_expression(template: str) -> str | None:
    stripped = template.strip()
    if not (stripped.startswith("{{") and stripped.endswith("}}")) or stripped.count("{{") != 1:
        return None
    inner = stripped[2:-2].strip()
    return inner if inner and "tojson" not in inner else None


_NOT_JSON = object()


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return _NOT_JSON


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@functools.lru_cache(maxsize=4096)
def _reject_method_calls(template: str) -> None:
    for match in _TAG.finditer(template):
        body = _STRING_LITERAL.sub("''", match.group(1) or match.group(2) or "")
        for call in _METHOD_CALL.finditer(body):
            owner, method = call.group(1), call.group(2)
            if (owner, method) not in _ALLOWED_METHODS:
                raise TemplateError(
                    f"unknown method: {method} (Python-style method calls are not available; use filters)"
                )


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- output and conversions ------------------------------------------------------------------


def _to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list | tuple):
        return _to_json(value)
    return str(value)


def _filter_default(value: Any, default: Any = "", boolean: bool = False) -> Any:
    if value is None or (boolean and not value):
        return default
    return value


def _filter_int(value: Any) -> int:
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float):
        return int(value)
    text = _text(value).strip()
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return int(float(text))
    raise ValueError(f"int: cannot convert {text!r}")


def _filter_float(value: Any) -> float:
    if isinstance(value, bool | int | float):
        return float(value)
    text = _text(value).strip()
    if _FLOAT.fullmatch(text):
        return float(text)
    raise ValueError(f"float: cannot convert {text!r}")


def _filter_split(value: Any, sep: str = " ") -> list[str]:
    return _text(value).split(sep)


def _filter_join(value: Any, sep: str = "") -> str:
    if isinstance(value, Mapping):
        return sep.join(_text(k) for k in value)
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        raise ValueError("join requires a sequence")
    return sep.join(_text(item) for item in value)


def _sequence(value: Any, name: str) -> list[Any]:
    if isinstance(value, str):
        return list(value)
    if isinstance(value, Mapping):
        return list(value.keys())
    if isinstance(value, list | tuple):
        return list(value)
    raise ValueError(f"{name} requires a sequence")


def _filter_first(value: Any) -> Any:
    items = _sequence(value, "first")
    if not items:
        raise ValueError("first: sequence is empty")
    return items[0]


def _filter_last(value: Any) -> Any:
    items = _sequence(value, "last")
    if not items:
        raise ValueError("last: sequence is empty")
    return items[-1]


def _filter_length(value: Any) -> int:
    if isinstance(value, str | Mapping | list | tuple):
        return len(value)
    raise ValueError("length requires a string, sequence or mapping")


def _mapping(value: Any, name: str) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} requires a mapping")
    return value


def _filter_get(value: Any, key: Any, default: Any = None) -> Any:
    if isinstance(value, Mapping):
        return value.get(key, default)
    if isinstance(value, list | tuple) and isinstance(key, int) and -len(value) <= key < len(value):
        return value[key]
    return default


def _filter_fromjson(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ValueError(f"fromjson: {exc}") from None


def _filter_b64decode(value: Any) -> str:
    try:
        return base64.b64decode(_text(value), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"b64decode: {exc}") from None


_FILTERS: dict[str, Callable[..., Any]] = {
    "tojson": lambda value, indent=None: minijinja.safe(json.dumps(value, ensure_ascii=False, indent=indent)),
    "fromjson": _filter_fromjson,
    "default": _filter_default,
    "d": _filter_default,
    "int": _filter_int,
    "float": _filter_float,
    "string": _text,
    "lower": lambda value: _text(value).lower(),
    "upper": lambda value: _text(value).upper(),
    "trim": lambda value: _text(value).strip(),
    "split": _filter_split,
    "join": _filter_join,
    "first": _filter_first,
    "last": _filter_last,
    "length": _filter_length,
    "count": _filter_length,
    "keys": lambda value: list(_mapping(value, "keys").keys()),
    "values": lambda value: list(_mapping(value, "values").values()),
    "items": lambda value: [[k, v] for k, v in _mapping(value, "items").items()],
    "get": _filter_get,
    "safe": lambda value: value,
    "b64encode": lambda value: base64.b64encode(_text(value).encode("utf-8")).decode("ascii"),
    "b64decode": _filter_b64decode,
}

_TESTS: dict[str, Callable[..., bool]] = {
    "defined": lambda value: value is not None,
    "undefined": lambda value: value is None,
    # Every none that reaches Python is indistinguishable from undefined, and a JSON null
    # is undefined (§8.1), so nothing tests as none.
    "none": lambda value: False,
    "string": lambda value: isinstance(value, str),
    "number": lambda value: isinstance(value, int | float) and not isinstance(value, bool),
    "sequence": lambda value: isinstance(value, list | tuple),
    "mapping": lambda value: isinstance(value, Mapping),
}
