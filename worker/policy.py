"""Policy rules of a tool or pipeline task (dsl.md §9.11), judged on the worker after each attempt.

Pure: reading the rules, the `output` a rule sees, matching, rendering `then.set`, backoff delays
and jump targets. Running attempts and sleeping between them is `pipeline.py`'s job.

An error's `kind` follows the Python reference's classification (`noetl/core/errors.py`): an http
result with a status >= 400 is `rate_limit` (429), `auth` (401, 403), `not_found` (404),
`client_error` (other 4xx) or `server_error` (5xx), its status kept as `code` and `http_status`.
Otherwise it is the tool's own `ToolResult.error_kind` when it set one (`timeout`, `connection`),
else read from the message: one starting with `timeout` is a timeout and one starting with
`connection` a connection failure (tools word them so); anything else is a `tool` error whose
`code` is the exception name of a python `Name: message` error. A rule written for the mesh's
former name of every http error, `http`, still matches: see `decide`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from language.templating import Renderer, TemplateError, has_template_syntax, scoped_key
from worker.tools.base import ToolResult

DEFAULT_ATTEMPTS = 3  # dsl.md §17.7: `max_attempts` when a retry rule names none
# dsl.md §8.4: worker-side rules use this narrower set than the server's conditions.
_FALSY = frozenset({"", "false", "False", "0", "none", "None", "null"})
_PREVIOUS = frozenset({"previous", "prev", "_previous", "@previous"})
_RETRYABLE_HTTP = frozenset({408, 429})
_HTTP_KINDS = {429: "rate_limit", 401: "auth", 403: "auth", 404: "not_found"}
_HTTP_ERROR_KINDS = frozenset({*_HTTP_KINDS.values(), "client_error", "server_error"})
_LEGACY_HTTP_KIND = "http"  # what every http error was called before the reference's kinds
_EXCEPTION_NAME = re.compile(r"([A-Za-z_][\w.]*)(?::|$)")


class Do(StrEnum):
    CONTINUE = "continue"
    RETRY = "retry"
    FAIL = "fail"
    BREAK = "break"
    JUMP = "jump"


class Backoff(StrEnum):
    FIXED = "fixed"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"


class PolicyError(Exception):
    """A rule that cannot be read, rendered or followed; the command fails with this message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Then:
    do: Do = Do.CONTINUE
    attempts: int = DEFAULT_ATTEMPTS
    delay: float = 0.0
    backoff: Backoff = Backoff.FIXED
    to: str | None = None
    set: Mapping[str, Any] = field(default_factory=dict)

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based) before the next one."""
        if self.backoff is Backoff.LINEAR:
            return self.delay * attempt
        if self.backoff is Backoff.EXPONENTIAL:
            return self.delay * 2.0 ** (attempt - 1)
        return self.delay


@dataclass(frozen=True, slots=True)
class Rule:
    when: str | None  # None: an `else` rule, which always matches
    then: Then


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do after one attempt, and what the matching rule's `then.set` wrote."""

    do: Do
    rule: int | None = None  # 1-based index of the matching rule; None when the default applied
    delay: float = 0.0  # before the next attempt, for `retry`
    to: str | None = None  # for `jump`
    values: dict[str, Any] = field(default_factory=dict)  # rendered `then.set`, under its own keys
    context_updates: dict[str, Any] = field(default_factory=dict)  # the `ctx.*` part of `values`


def parse_rules(spec: Any) -> tuple[Rule, ...]:
    """The rules of a tool's raw (unrendered) `spec.policy.rules`; none when it has no policy.

    Raises:
        PolicyError: a rule is not a mapping, or its `then` is malformed.
    """
    policy = spec.get("policy") if isinstance(spec, Mapping) else None
    raw = policy.get("rules") if isinstance(policy, Mapping) else None
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise PolicyError("policy.rules must be a list")
    return tuple(_rule(index, item) for index, item in enumerate(raw, start=1))


def _rule(index: int, item: Any) -> Rule:
    if not isinstance(item, Mapping):
        raise PolicyError(f"policy rule {index} must be a mapping")
    if "else" in item:
        body = item["else"]
        if not isinstance(body, Mapping):
            raise PolicyError(f"policy rule {index}: else must be a mapping")
        # `- else: {then: {...}}` is the documented form; `- else: {do: ...}` is read the same.
        return Rule(when=None, then=_then(index, body.get("then", body)))
    when = item.get("when")
    if when is not None and not isinstance(when, str | bool | int | float):
        raise PolicyError(f"policy rule {index}: when must be a condition")
    return Rule(when=None if when is None else str(when), then=_then(index, item.get("then")))


def _then(index: int, raw: Any) -> Then:
    if not isinstance(raw, Mapping):
        raise PolicyError(f"policy rule {index}: then must be a mapping")
    try:
        do = Do(str(raw.get("do", Do.CONTINUE)).lower())
        backoff = Backoff(str(raw.get("backoff", Backoff.FIXED)).lower())
    except ValueError as exc:
        raise PolicyError(f"policy rule {index}: {exc}") from None
    attempts = raw.get("attempts", DEFAULT_ATTEMPTS)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise PolicyError(f"policy rule {index}: attempts must be a positive integer, got {attempts!r}")
    delay = raw.get("delay", 0.0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        raise PolicyError(f"policy rule {index}: delay must be a non-negative number, got {delay!r}")
    to = raw.get("to")
    if do is Do.JUMP and not (isinstance(to, str) and to):
        raise PolicyError(f"policy rule {index}: jump needs a task label in 'to'")
    values = raw.get("set") or {}
    if not isinstance(values, Mapping):
        raise PolicyError(f"policy rule {index}: then.set must be a mapping")
    return Then(
        do=do,
        attempts=attempts,
        delay=float(delay),
        backoff=backoff,
        to=to if isinstance(to, str) else None,
        set=values,
    )


def attempt_output(kind: str, result: ToolResult) -> dict[str, Any]:
    """The `output` a rule sees: `{status, data, error?, http?, response?}` (dsl.md §9.11).

    An http tool's `response` is its result (`status_code`, `headers`, `data`, `body`), as the
    reference's http result reads in rule expressions (`output.response.status_code`).
    """
    output: dict[str, Any] = {"status": "success" if result.ok else "error", "data": result.data}
    http = _http(kind, result.data)
    if http is not None:
        output["http"] = http
        output["response"] = result.data
    if not result.ok:
        output["error"] = _error(result.error or "tool failed", http, result.error_kind)
    return output


def _http(kind: str, data: Any) -> dict[str, Any] | None:
    if kind != "http" or not isinstance(data, Mapping):
        return None
    status = data.get("status_code")
    if not isinstance(status, int) or isinstance(status, bool):
        return None
    return {"status": status, "headers": data.get("headers") or {}}


def _error(message: str, http: Mapping[str, Any] | None, kind: str | None = None) -> dict[str, Any]:
    lowered = message.lower()
    if kind == "timeout" or (kind is None and lowered.startswith("timeout")):
        return {"kind": "timeout", "retryable": True, "code": "timeout", "message": message}
    if kind == "connection" or (kind is None and lowered.startswith("connection")):
        return {"kind": "connection", "retryable": True, "code": "connection", "message": message}
    if http is not None and http["status"] >= 400:
        status = http["status"]
        error = {
            "kind": _HTTP_KINDS.get(status, "server_error" if status >= 500 else "client_error"),
            "retryable": status in _RETRYABLE_HTTP or status >= 500,
            "code": status,
            "http_status": status,
            "message": message,
        }
        retry_after = _retry_after(http["headers"])
        if retry_after is not None:
            error["retry_after"] = retry_after
        return error
    name = _EXCEPTION_NAME.match(message)
    return {"kind": "tool", "retryable": False, "code": name.group(1) if name else None, "message": message}


def _retry_after(headers: Any) -> int | None:
    """A `Retry-After` header in seconds, as the reference reads it (a date is ignored)."""
    if not isinstance(headers, Mapping):
        return None
    raw = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    return int(raw) if isinstance(raw, str) and raw.strip().isdigit() else None


def decide(
    rules: Sequence[Rule], *, ok: bool, attempt: int, context: Mapping[str, Any], renderer: Renderer
) -> Verdict:
    """Judge one attempt: the first matching rule wins; with none, continue on success, fail on error.

    `context` is the worker-side context with `output` and `_attempt` (§8.6 C). A `retry` whose
    `attempts` are spent falls back to the default, so a success still continues. A `when` that
    does not hold for an http error is judged once more with the error's former kind `http`, so
    rules written either way match (docs/decisions.md).

    Raises:
        PolicyError: a `when` or a `then.set` value fails to render.
    """
    views = _views(context)
    for index, rule in enumerate(rules, start=1):
        if rule.when is not None and not any(_holds(rule.when, view, renderer, index) for view in views):
            continue
        values = _render_set(rule.then.set, context, renderer, index)
        updates = {scoped_key(key): value for key, value in values.items() if key.startswith("ctx.")}
        do = rule.then.do
        if do is Do.RETRY and attempt >= rule.then.attempts:
            do = _default(ok)
        return Verdict(
            do=do,
            rule=index,
            delay=rule.then.delay_after(attempt) if do is Do.RETRY else 0.0,
            to=rule.then.to,
            values=values,
            context_updates=updates,
        )
    return Verdict(do=_default(ok))


def _views(context: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The contexts a `when` is judged against: as is, then with an http error's former kind."""
    output = context.get("output")
    if not isinstance(output, Mapping):
        return [context]
    error = output.get("error")
    if not isinstance(error, Mapping) or error.get("kind") not in _HTTP_ERROR_KINDS:
        return [context]
    legacy = {**error, "kind": _LEGACY_HTTP_KIND}
    return [context, {**context, "output": {**output, "error": legacy}}]


def _default(ok: bool) -> Do:
    return Do.CONTINUE if ok else Do.FAIL


def _holds(when: str, context: Mapping[str, Any], renderer: Renderer, index: int) -> bool:
    template = when if has_template_syntax(when) else f"{{{{ {when} }}}}"
    try:
        return renderer.render_text(template, context).strip() not in _FALSY
    except TemplateError as exc:
        raise PolicyError(f"policy rule {index} when: {exc.message}") from None


def _render_set(
    values: Mapping[str, Any], context: Mapping[str, Any], renderer: Renderer, index: int
) -> dict[str, Any]:
    rendered: dict[str, Any] = {}
    for key, raw in values.items():
        try:
            rendered[str(key)] = renderer.render_value(raw, context)
        except TemplateError as exc:
            raise PolicyError(f"policy rule {index} set {key}: {exc.message}") from None
    return rendered


def jump_index(to: str, labels: Sequence[str], current: int) -> int:
    """The index of the task a `jump` goes to: a label, or the task before `current`.

    Raises:
        PolicyError: no such label, or `previous` from the first task.
    """
    if to in _PREVIOUS:
        if current == 0:
            raise PolicyError(f"jump to {to}: '{labels[current]}' is the first task")
        return current - 1
    try:
        return labels.index(to)
    except ValueError:
        raise PolicyError(f"jump to unknown task '{to}'") from None
