"""The worker's pipeline runner and single-tool policies (dsl.md §9.11), with scripted test tools."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from worker.pipeline import PIPELINE_KIND, ToolRunner, parse_tasks, tool_config
from worker.policy import PolicyError
from worker.tools.base import ToolCall, ToolResult
from worker.tools.python import PythonTool
from worker.tools.python_runner import PythonRunner

BASE_CONTEXT: dict[str, Any] = {
    "api_url": "http://api.test",
    "workload": {"api_url": "http://api.test"},
    "ctx": {"api_url": "http://api.test", "flag": True},
    "flag": True,
    "execution_id": "7",
}


class Scripted:
    """Answers each call with the next scripted result (the last one repeats) and keeps the calls."""

    def __init__(self, *results: ToolResult) -> None:
        self._results = list(results)
        self.calls: list[ToolCall] = []

    async def run(self, call: ToolCall) -> ToolResult:
        self.calls.append(call)
        return self._results.pop(0) if len(self._results) > 1 else self._results[0]


class Echo:
    """Succeeds with what it was given: its input, and its config without `kind`."""

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []

    async def run(self, call: ToolCall) -> ToolResult:
        self.calls.append(call)
        config = {k: v for k, v in call.config.items() if k not in ("kind", "spec")}
        return ToolResult(ok=True, data={**config, **call.input}, stdout=f"{call.config.get('name')}\n")


class Hangs:
    """Never finishes on its own, like a tool that ignores its timeout."""

    async def run(self, call: ToolCall) -> ToolResult:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


def ok(data: Any) -> ToolResult:
    return ToolResult(ok=True, data=data)


def error(message: str) -> ToolResult:
    return ToolResult(ok=False, data=None, error=message)


def command(
    tasks: list[dict[str, Any]] | None = None,
    *,
    kind: str = PIPELINE_KIND,
    config: dict[str, Any] | None = None,
    input_: dict[str, Any] | None = None,
    timeout: float | None = 30.0,
) -> ToolCall:
    return ToolCall(
        execution_id=7,
        command_id=11,
        step="run_pipeline",
        kind=kind,
        config=tool_config(tasks) if tasks is not None else (config or {}),
        input=input_ or {},
        render_context=BASE_CONTEXT,
        timeout=timeout,
        server_url="http://server.test",
    )


def retry_rule(attempts: int = 3, when: str = "{{ output.status == 'error' }}") -> dict[str, Any]:
    return {"policy": {"rules": [{"when": when, "then": {"do": "retry", "attempts": attempts, "delay": 0}}]}}


# Task list


def test_tasks_are_labelled_by_name_or_index() -> None:
    tasks = parse_tasks([{"name": "fetch", "kind": "echo"}, {"kind": "echo"}])
    assert [(t.label, t.kind) for t in tasks] == [("fetch", "echo"), ("task_1", "echo")]


def test_a_task_list_must_hold_mappings_with_sound_rules() -> None:
    with pytest.raises(PolicyError, match="task 0 is not a mapping"):
        parse_tasks(["echo"])
    with pytest.raises(PolicyError, match="task 'a': policy rule 1 must be a mapping"):
        parse_tasks([{"name": "a", "kind": "echo", "spec": {"policy": {"rules": ["x"]}}}])


async def test_a_malformed_policy_fails_before_any_task_runs() -> None:
    echo = Echo()
    runner = ToolRunner({"echo": echo})
    bad = {"policy": {"rules": [{"when": "true", "then": {"do": "nope"}}]}}
    result = await runner.run(
        command([{"name": "a", "kind": "echo"}, {"name": "b", "kind": "echo", "spec": bad}])
    )
    assert not result.ok
    assert result.error == "task 'b': policy rule 1: 'nope' is not a valid Do"
    assert echo.calls == []


# Running context


async def test_tasks_see_earlier_results_prev_and_set_values() -> None:
    echo = Echo()
    runner = ToolRunner({"echo": echo})
    result = await runner.run(
        command(
            [
                {
                    "name": "first",
                    "kind": "echo",
                    "input": {"url": "{{ api_url }}/x", "n": "{{ 20 + 1 }}"},
                    "set": {"ctx.doubled": "{{ output.n * 2 }}", "whole": "{{ output }}"},
                },
                {
                    "name": "second",
                    "kind": "echo",
                    "input": {
                        "by_label": "{{ first.n }}",
                        "by_alias": "{{ first.data.n }}",
                        "prev": "{{ _prev.url }}",
                        "doubled": "{{ doubled }}",
                        "via_ctx": "{{ ctx.doubled }}",
                        "whole_n": "{{ whole.n }}",
                        "flag": "{{ ctx.flag }}",
                    },
                },
            ]
        )
    )
    assert result.ok, result.error
    assert result.data == {
        "first": {"name": "first", "url": "http://api.test/x", "n": 21},
        "second": {
            "name": "second",
            "by_label": 21,
            "by_alias": 21,
            "prev": "http://api.test/x",
            "doubled": 42,
            "via_ctx": 42,
            "whole_n": 21,
            "flag": True,
        },
    }
    assert result.stdout == "first\nsecond\n"
    # Python code sees the pipeline's own values as `variables`.
    assert echo.calls[1].variables == {
        "first": {"name": "first", "url": "http://api.test/x", "n": 21},
        "_prev": {"name": "first", "url": "http://api.test/x", "n": 21},
        "doubled": 42,
        "whole": {"name": "first", "url": "http://api.test/x", "n": 21},
    }


async def test_command_input_reaches_every_task_and_args_is_an_alias_of_input() -> None:
    echo = Echo()
    runner = ToolRunner({"echo": echo})
    result = await runner.run(
        command(
            [{"name": "a", "kind": "echo", "args": {"x": "{{ item }}", "y": 1}, "input": {"y": 2}}],
            input_={"item": "i0", "_index": 0},
        )
    )
    assert result.data == {"a": {"name": "a", "item": "i0", "_index": 0, "x": "i0", "y": 2}}


async def test_a_task_is_rendered_again_before_each_attempt() -> None:
    tool = Scripted(error("boom"), ok({"done": True}))
    runner = ToolRunner({"flaky": tool})
    spec = {
        "policy": {
            "rules": [
                {
                    "when": "{{ output.status == 'error' }}",
                    "then": {"do": "retry", "attempts": 2, "set": {"tries": "{{ _attempt }}"}},
                }
            ]
        }
    }
    await runner.run(
        command([{"name": "a", "kind": "flaky", "url": "/{{ tries | default(0) }}", "spec": spec}])
    )
    assert [call.config["url"] for call in tool.calls] == ["/0", "/1"]


# Results and failures


async def test_policy_ctx_values_come_back_as_context_updates() -> None:
    runner = ToolRunner({"py": Scripted(ok({"status": "success", "test_counter": 42}))})
    spec = {
        "policy": {
            "rules": [
                {
                    "else": {
                        "then": {
                            "do": "continue",
                            "set": {"ctx.test_counter": "{{ output.data.test_counter }}"},
                        }
                    }
                }
            ]
        }
    }
    result = await runner.run(command([{"name": "set_vars", "kind": "py", "spec": spec}]))
    assert result.data == {
        "set_vars": {"status": "success", "test_counter": 42},
        "_context_updates": {"test_counter": 42},
    }


async def test_iter_values_set_by_a_rule_read_back_as_iter_and_bare() -> None:
    echo = Echo()
    runner = ToolRunner({"py": Scripted(ok({"value": 2})), "echo": echo})
    spec = {"policy": {"rules": [{"else": {"then": {"set": {"iter.shaped": "{{ output.data }}"}}}}]}}
    tasks = [
        {"name": "shape", "kind": "py", "spec": spec},
        {
            "name": "read",
            "kind": "echo",
            "input": {"dotted": "{{ iter.shaped.value }}", "bare": "{{ shaped.value }}"},
        },
    ]
    result = await runner.run(command(tasks))
    assert result.ok and result.data["read"] == {"name": "read", "dotted": 2, "bare": 2}


async def test_a_failing_task_fails_the_pipeline_with_its_error() -> None:
    echo = Echo()
    runner = ToolRunner(
        {
            "echo": echo,
            "bad": Scripted(ToolResult(ok=False, data=None, error="AssertionError: no", stderr="tb\n")),
        }
    )
    result = await runner.run(
        command([{"name": "a", "kind": "echo"}, {"name": "b", "kind": "bad"}, {"name": "c", "kind": "echo"}])
    )
    assert not result.ok
    assert result.error == "AssertionError: no"
    assert (result.stdout, result.stderr) == ("a\n", "tb\n")
    assert [call.config["name"] for call in echo.calls] == ["a"]


async def test_continue_on_error_records_the_error_and_goes_on() -> None:
    runner = ToolRunner({"bad": Scripted(error("NameError: logging")), "echo": Echo()})
    spec = {"policy": {"rules": [{"else": {"then": {"do": "continue"}}}]}}
    result = await runner.run(
        command(
            [
                {"name": "a", "kind": "bad", "spec": spec},
                {"name": "b", "kind": "echo", "input": {"seen": "{{ a.status }}"}},
            ]
        )
    )
    assert result.ok
    assert result.data == {
        "a": {"status": "error", "error": "NameError: logging"},
        "b": {"name": "b", "seen": "error"},
    }


async def test_fail_rule_on_a_success_fails_the_pipeline() -> None:
    runner = ToolRunner({"echo": Echo()})
    spec = {"policy": {"rules": [{"when": "{{ output.data.name == 'a' }}", "then": {"do": "fail"}}]}}
    result = await runner.run(command([{"name": "a", "kind": "echo", "spec": spec}]))
    assert (result.ok, result.error) == (False, "'a' failed by policy rule 1")


async def test_unsupported_kind_and_render_errors_are_task_errors() -> None:
    runner = ToolRunner({})
    result = await runner.run(command([{"name": "a", "kind": "ftp"}]))
    assert result.error == "tool kind 'ftp' is not supported by this worker"
    result = await runner.run(command([{"name": "a", "kind": "ftp", "input": {"x": "{{ a.items() }}"}}]))
    assert result.error is not None and result.error.startswith("task 'a': unknown method: items")


async def test_a_set_render_error_fails_the_pipeline() -> None:
    runner = ToolRunner({"echo": Echo()})
    result = await runner.run(command([{"name": "a", "kind": "echo", "set": {"x": "{{ output.keys() }}"}}]))
    assert result.error is not None and result.error.startswith("task 'a': set x: unknown method: keys")


# Retry, break, jump


async def test_retry_until_success() -> None:
    tool = Scripted(error("timeout: slow"), error("timeout: slow"), ok({"n": 3}))
    runner = ToolRunner({"flaky": tool})
    result = await runner.run(command([{"name": "a", "kind": "flaky", "spec": retry_rule(attempts=3)}]))
    assert result.ok
    assert result.data == {"a": {"n": 3}}
    assert len(tool.calls) == 3


async def test_retries_spent_fail_with_the_last_error() -> None:
    tool = Scripted(error("first"), error("second"))
    runner = ToolRunner({"flaky": tool})
    result = await runner.run(command([{"name": "a", "kind": "flaky", "spec": retry_rule(attempts=2)}]))
    assert (result.ok, result.error, len(tool.calls)) == (False, "second", 2)


async def test_break_stops_the_pipeline_successfully() -> None:
    echo = Echo()
    runner = ToolRunner({"echo": echo})
    spec = {"policy": {"rules": [{"else": {"then": {"do": "break"}}}]}}
    result = await runner.run(
        command([{"name": "a", "kind": "echo", "spec": spec}, {"name": "b", "kind": "echo"}])
    )
    assert result.ok
    assert result.data == {"a": {"name": "a"}}


async def test_jump_back_loops_until_a_rule_lets_go() -> None:
    echo = Echo()
    runner = ToolRunner({"echo": echo})
    count = {
        "policy": {
            "rules": [{"else": {"then": {"do": "continue", "set": {"n": "{{ (n | default(0)) + 1 }}"}}}}]
        }
    }
    again = {"policy": {"rules": [{"when": "{{ n < 3 }}", "then": {"do": "jump", "to": "previous"}}]}}
    result = await runner.run(
        command(
            [
                {"name": "count", "kind": "echo", "spec": count},
                {"name": "check", "kind": "echo", "input": {"n": "{{ n }}"}, "spec": again},
                {"name": "after", "kind": "echo"},
            ]
        )
    )
    assert result.ok, result.error
    assert [call.config["name"] for call in echo.calls] == ["count", "check"] * 3 + ["after"]
    assert result.data["check"] == {"name": "check", "n": 3}


async def test_jump_to_an_unknown_label_fails() -> None:
    runner = ToolRunner({"echo": Echo()})
    spec = {"policy": {"rules": [{"else": {"then": {"do": "jump", "to": "nowhere"}}}]}}
    result = await runner.run(command([{"name": "a", "kind": "echo", "spec": spec}]))
    assert result.error == "task 'a': jump to unknown task 'nowhere'"


# The command's deadline


async def test_the_deadline_bounds_retries_and_a_tool_that_ignores_it() -> None:
    runner = ToolRunner({"hangs": Hangs()})
    result = await runner.run(
        command([{"name": "a", "kind": "hangs", "spec": retry_rule(when="true")}], timeout=0.05)
    )
    assert result.error == "timeout: step 'run_pipeline' exceeded 0.05s"


async def test_a_task_timeout_is_capped_by_the_command() -> None:
    echo = Echo()
    runner = ToolRunner({"echo": echo})
    await runner.run(
        command([{"name": "a", "kind": "echo", "timeout": 5}, {"name": "b", "kind": "echo", "timeout": 900}])
    )
    first, second = (call.timeout for call in echo.calls)
    assert first == 5.0
    assert second is not None and 29 < second <= 30


# A single tool under its policy


async def test_single_tool_without_policy_runs_once() -> None:
    tool = Scripted(error("boom"), ok({}))
    result = await ToolRunner({"flaky": tool}).run(command(kind="flaky", config={"kind": "flaky"}))
    assert (result.ok, result.error, len(tool.calls)) == (False, "boom", 1)


async def test_single_tool_is_retried_whole() -> None:
    tool = Scripted(error("ValueError: not yet"), ok({"status": "ok"}))
    config = {"kind": "flaky", "spec": retry_rule(attempts=2)}
    result = await ToolRunner({"flaky": tool}).run(command(kind="flaky", config=config))
    assert result.ok
    assert result.data == {"status": "ok"}
    assert len(tool.calls) == 2


async def test_single_tool_ctx_values_ride_in_its_result() -> None:
    spec = {"policy": {"rules": [{"else": {"then": {"set": {"ctx.seen": "{{ output.data.n }}"}}}}]}}
    config = {"kind": "py", "spec": spec}
    result = await ToolRunner({"py": Scripted(ok({"n": 5}))}).run(command(kind="py", config=config))
    assert result.data == {"n": 5, "_context_updates": {"seen": 5}}


async def test_single_tool_cannot_jump() -> None:
    spec = {"policy": {"rules": [{"else": {"then": {"do": "jump", "to": "x"}}}]}}
    result = await ToolRunner({"py": Scripted(ok({}))}).run(
        command(kind="py", config={"kind": "py", "spec": spec})
    )
    assert result.error == "policy jump: a single tool has no task to jump to"


# The real python tool inside a pipeline (fixtures C1, C2)


@pytest.fixture
async def python_runner() -> AsyncIterator[PythonRunner]:
    async with PythonRunner(processes=1) as runner:
        yield runner


async def test_python_tasks_get_input_data_libs_context_and_variables(python_runner: PythonRunner) -> None:
    runner = ToolRunner({"python": PythonTool(python_runner)})
    result = await runner.run(
        command(
            [
                {"name": "first", "kind": "python", "code": "result = {'n': 2}"},
                {
                    "name": "second",
                    "kind": "python",
                    "libs": {"os": "os"},
                    "input": {"input_data": {"table": "{{ first.n }}"}, "other": 1},
                    "code": (
                        "result = {'table': input_data['table'], 'sep': os.sep,"
                        " 'keys': sorted(context), 'prev': variables['_prev']['n'], 'other': other}"
                    ),
                },
            ]
        )
    )
    assert result.ok, (result.error, result.stderr)
    assert result.data["second"] == {
        "table": 2,
        "sep": "/",
        "keys": ["args", "execution_id", "server_url", "step", "variables"],
        "prev": 2,
        "other": 1,
    }
