"""Policy rules on the worker (dsl.md §9.11): reading rules, `output`, matching, `then.set`, delays, jumps."""

from __future__ import annotations

from typing import Any

import pytest

from language.templating import Renderer
from worker.policy import (
    Backoff,
    Do,
    PolicyError,
    Rule,
    Then,
    Verdict,
    attempt_output,
    decide,
    jump_index,
    parse_rules,
)
from worker.tools.base import ToolResult

RENDERER = Renderer()
OK = ToolResult(ok=True, data={"n": 1})


def _spec(*rules: Any) -> dict[str, Any]:
    return {"policy": {"rules": list(rules)}}


def _decide(rules: tuple[Rule, ...], result: ToolResult, attempt: int = 1, **context: Any) -> Verdict:
    full = {**context, "_attempt": attempt, "output": attempt_output("python", result)}
    return decide(rules, ok=result.ok, attempt=attempt, context=full, renderer=RENDERER)


# Reading rules


def test_no_policy_means_no_rules() -> None:
    assert parse_rules(None) == ()
    assert parse_rules({}) == ()
    assert parse_rules({"policy": {}}) == ()


def test_when_and_else_forms() -> None:
    rules = parse_rules(
        _spec(
            {"when": "{{ output.status == 'error' }}", "then": {"do": "retry", "attempts": 5, "delay": 0.5}},
            {"else": {"then": {"do": "continue", "set": {"ctx.x": 1}}}},
        )
    )
    assert rules == (
        Rule(when="{{ output.status == 'error' }}", then=Then(do=Do.RETRY, attempts=5, delay=0.5)),
        Rule(when=None, then=Then(do=Do.CONTINUE, set={"ctx.x": 1})),
    )


def test_then_defaults() -> None:
    (rule,) = parse_rules(_spec({"when": "true", "then": {"do": "retry"}}))
    assert rule.then == Then(do=Do.RETRY, attempts=3, delay=0.0, backoff=Backoff.FIXED, to=None, set={})


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("retry", "policy rule 1 must be a mapping"),
        ({"when": "true"}, "policy rule 1: then must be a mapping"),
        ({"when": "true", "then": {"do": "explode"}}, "policy rule 1: 'explode' is not a valid Do"),
        ({"when": "true", "then": {"do": "retry", "attempts": 0}}, "attempts must be a positive integer"),
        ({"when": "true", "then": {"do": "retry", "delay": -1}}, "delay must be a non-negative number"),
        ({"when": "true", "then": {"do": "retry", "backoff": "cubic"}}, "'cubic' is not a valid Backoff"),
        ({"when": "true", "then": {"do": "jump"}}, "jump needs a task label in 'to'"),
        ({"else": {"then": {"set": ["x"]}}}, "then.set must be a mapping"),
    ],
)
def test_malformed_rules_are_refused(rule: Any, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_rules(_spec(rule))


# The output a rule sees


def test_output_of_a_success() -> None:
    assert attempt_output("python", ToolResult(ok=True, data={"a": 1})) == {
        "status": "success",
        "data": {"a": 1},
    }


def test_output_of_a_python_error_names_the_exception() -> None:
    output = attempt_output("python", ToolResult(ok=False, data=None, error="ValueError: bad input"))
    assert output == {
        "status": "error",
        "data": None,
        "error": {
            "kind": "tool",
            "retryable": False,
            "code": "ValueError",
            "message": "ValueError: bad input",
        },
    }


@pytest.mark.parametrize(
    ("error", "kind", "retryable"),
    [
        ("timeout: step 's' exceeded 5s", "timeout", True),
        ("connection refused by 127.0.0.1:1", "connection", True),
        ("something odd happened", "tool", False),
    ],
)
def test_error_kinds_from_the_message(error: str, kind: str, retryable: bool) -> None:
    output = attempt_output("python", ToolResult(ok=False, data=None, error=error))
    assert (output["error"]["kind"], output["error"]["retryable"]) == (kind, retryable)


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (400, "client_error", False),
        (401, "auth", False),
        (403, "auth", False),
        (404, "not_found", False),
        (408, "client_error", True),
        (429, "rate_limit", True),
        (500, "server_error", True),
        (503, "server_error", True),
    ],
)
def test_http_errors_are_classified_like_the_reference(status: int, kind: str, retryable: bool) -> None:
    data = {"status_code": status, "headers": {"x": "1"}, "data": {}, "body": {}}
    output = attempt_output("http", ToolResult(ok=False, data=data, error=f"HTTP {status}"))
    assert output["http"] == {"status": status, "headers": {"x": "1"}}
    assert output["response"] == data
    assert output["error"] == {
        "kind": kind,
        "retryable": retryable,
        "code": status,
        "http_status": status,
        "message": f"HTTP {status}",
    }


def test_a_retry_after_header_is_kept_in_seconds() -> None:
    data = {"status_code": 429, "headers": {"retry-after": "7"}, "data": {}, "body": {}}
    output = attempt_output("http", ToolResult(ok=False, data=data, error="HTTP 429"))
    assert output["error"]["retry_after"] == 7


@pytest.mark.parametrize(
    ("when", "matches"),
    [
        ("output.error.kind == 'server_error'", True),
        ("output.error.kind == 'http'", True),
        ("output.error.kind == 'http' and output.error.code == 502", True),
        ("output.error.kind == 'rate_limit'", False),
        ("output.error.kind == 'tool'", False),
    ],
)
def test_rules_match_the_reference_kind_and_the_former_http_kind(when: str, matches: bool) -> None:
    data = {"status_code": 502, "headers": {}, "data": {}, "body": {}}
    result = ToolResult(ok=False, data=data, error="HTTP 502")
    rules = parse_rules(
        _spec({"when": when, "then": {"do": "continue", "set": {"k": "{{ output.error.kind }}"}}})
    )
    context = {"_attempt": 1, "output": attempt_output("http", result)}
    verdict = decide(rules, ok=False, attempt=1, context=context, renderer=RENDERER)
    assert (verdict.do, verdict.values) == (
        (Do.CONTINUE, {"k": "server_error"}) if matches else (Do.FAIL, {})
    )


def test_http_success_carries_http() -> None:
    data = {"status_code": 200, "headers": {}, "data": {"a": 1}, "body": {"a": 1}}
    output = attempt_output("http", ToolResult(ok=True, data=data))
    assert output == {
        "status": "success",
        "data": data,
        "http": {"status": 200, "headers": {}},
        "response": data,
    }


# Matching


def test_defaults_without_a_matching_rule() -> None:
    assert _decide((), OK) == Verdict(do=Do.CONTINUE)
    assert _decide((), ToolResult(ok=False, data=None, error="boom")) == Verdict(do=Do.FAIL)


def test_first_matching_rule_wins() -> None:
    rules = parse_rules(
        _spec(
            {"when": "{{ output.status == 'error' }}", "then": {"do": "fail"}},
            {"when": "{{ output.data.n == 1 }}", "then": {"do": "break"}},
            {"when": "{{ output.data.n >= 1 }}", "then": {"do": "retry"}},
            {"else": {"then": {"do": "jump", "to": "a"}}},
        )
    )
    assert _decide(rules, OK) == Verdict(do=Do.BREAK, rule=2, to=None)


def test_else_always_matches() -> None:
    rules = parse_rules(_spec({"when": "false", "then": {"do": "fail"}}, {"else": {"then": {"do": "break"}}}))
    assert _decide(rules, OK).do is Do.BREAK
    assert _decide(rules, OK).rule == 2


def test_condition_without_template_syntax_is_an_expression() -> None:
    rules = parse_rules(_spec({"when": "output.data.n == 1", "then": {"do": "break"}}))
    assert _decide(rules, OK).do is Do.BREAK


@pytest.mark.parametrize("text", ["", "false", "False", "0", "none", "None", "null"])
def test_worker_falsy_set(text: str) -> None:
    rules = parse_rules(_spec({"when": "{{ flag }}", "then": {"do": "break"}}))
    assert _decide(rules, OK, flag=text).do is Do.CONTINUE


@pytest.mark.parametrize("text", ["no", "off", "NULL", "[]", "yes"])
def test_wider_server_falsy_values_are_true_here(text: str) -> None:
    rules = parse_rules(_spec({"when": "{{ flag }}", "then": {"do": "break"}}))
    assert _decide(rules, OK, flag=text).do is Do.BREAK


def test_attempt_is_visible_to_rules() -> None:
    rules = parse_rules(_spec({"when": "{{ _attempt < 3 }}", "then": {"do": "retry", "attempts": 9}}))
    assert _decide(rules, OK, attempt=2).do is Do.RETRY
    assert _decide(rules, OK, attempt=3).do is Do.CONTINUE


def test_spent_retries_fall_back_to_the_default() -> None:
    rules = parse_rules(_spec({"when": "true", "then": {"do": "retry", "attempts": 2}}))
    failed = ToolResult(ok=False, data=None, error="boom")
    assert _decide(rules, failed, attempt=1).do is Do.RETRY
    assert _decide(rules, failed, attempt=2).do is Do.FAIL
    assert _decide(rules, OK, attempt=2).do is Do.CONTINUE


def test_render_error_in_when_is_a_policy_error() -> None:
    rules = parse_rules(_spec({"when": "{{ output.items() }}", "then": {"do": "fail"}}))
    with pytest.raises(PolicyError, match="policy rule 1 when: unknown method: items"):
        _decide(rules, OK)


# then.set


def test_then_set_renders_against_output_and_collects_ctx_keys() -> None:
    rules = parse_rules(
        _spec(
            {
                "else": {
                    "then": {
                        "do": "continue",
                        "set": {
                            "ctx.test_counter": "{{ output.data.n + 41 }}",
                            "ctx.label": "{{ who }}",
                            "local": "{{ output.status }}",
                        },
                    }
                }
            }
        )
    )
    verdict = _decide(rules, OK, who="me")
    assert verdict.values == {"ctx.test_counter": 42, "ctx.label": "me", "local": "success"}
    assert verdict.context_updates == {"test_counter": 42, "label": "me"}


def test_then_set_render_error_is_a_policy_error() -> None:
    rules = parse_rules(_spec({"else": {"then": {"set": {"ctx.x": "{{ x.keys() }}"}}}}))
    with pytest.raises(PolicyError, match=r"policy rule 1 set ctx\.x"):
        _decide(rules, OK)


# Backoff


@pytest.mark.parametrize(
    ("backoff", "delays"),
    [
        (Backoff.FIXED, [1.5, 1.5, 1.5, 1.5]),
        (Backoff.LINEAR, [1.5, 3.0, 4.5, 6.0]),
        (Backoff.EXPONENTIAL, [1.5, 3.0, 6.0, 12.0]),
    ],
)
def test_delay_after_each_attempt(backoff: Backoff, delays: list[float]) -> None:
    then = Then(do=Do.RETRY, delay=1.5, backoff=backoff)
    assert [then.delay_after(attempt) for attempt in (1, 2, 3, 4)] == delays


def test_retry_verdict_carries_the_delay() -> None:
    rules = parse_rules(
        _spec({"when": "true", "then": {"do": "retry", "attempts": 5, "delay": 2, "backoff": "exponential"}})
    )
    assert _decide(rules, OK, attempt=3).delay == 8.0


# Jumps


def test_jump_to_a_label() -> None:
    assert jump_index("fetch", ["fetch", "transform", "validate"], 2) == 0


@pytest.mark.parametrize("alias", ["previous", "prev", "_previous", "@previous"])
def test_jump_to_the_previous_task(alias: str) -> None:
    assert jump_index(alias, ["a", "b", "c"], 2) == 1


def test_bad_jumps() -> None:
    with pytest.raises(PolicyError, match="jump to unknown task 'zzz'"):
        jump_index("zzz", ["a", "b"], 1)
    with pytest.raises(PolicyError, match="'a' is the first task"):
        jump_index("previous", ["a", "b"], 0)
