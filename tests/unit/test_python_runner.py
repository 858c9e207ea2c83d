"""The python tool's semantics (dsl §9.3, fixtures C1 and C2), run in real child processes.

Crash, timeout, concurrency and lifecycle behaviour: test_python_runner_faults.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from worker.tools.python_runner import PythonOutcome, PythonRunner

CONTEXT: dict[str, Any] = {
    "args": {"message": "hi"},
    "variables": {"counter": 1},
    "execution_id": "exec-42",
    "step": "transform",
    "server_url": "http://server.test",
}


@pytest.fixture
async def runner() -> AsyncIterator[PythonRunner]:
    async with PythonRunner(processes=2) as started:
        yield started


async def run_ok(runner: PythonRunner, code: str, inputs: dict[str, Any] | None = None, **kw: Any) -> Any:
    outcome = await runner.run(code, inputs or {}, context=CONTEXT, **kw)
    assert outcome.ok, (outcome.error, outcome.stderr)
    assert outcome.error is None
    return outcome.data


async def run_failing(runner: PythonRunner, code: str, inputs: dict[str, Any] | None = None) -> PythonOutcome:
    outcome = await runner.run(code, inputs or {}, context=CONTEXT)
    assert not outcome.ok
    assert outcome.data is None
    return outcome


# Returning data


async def test_result_assignment(runner: PythonRunner) -> None:
    code = 'print(f"got {message}")\nresult = {"status": "ok", "data": {"message": message}}'
    outcome = await runner.run(code, {"message": "Hello World"}, context=CONTEXT)
    assert outcome.ok
    assert outcome.data == {"status": "ok", "data": {"message": "Hello World"}}
    assert outcome.stdout == "got Hello World\n"
    assert outcome.duration_ms > 0


async def test_top_level_return(runner: PythonRunner) -> None:
    assert await run_ok(runner, "x = 2\nreturn {'double': x * n}", {"n": 21}) == {"double": 42}


async def test_return_inside_if_else(runner: PythonRunner) -> None:
    code = "if flag:\n    return 'yes'\nelse:\n    return 'no'\n"
    assert await run_ok(runner, code, {"flag": True}) == "yes"
    assert await run_ok(runner, code, {"flag": False}) == "no"


async def test_wrapped_code_that_falls_through_yields_result(runner: PythonRunner) -> None:
    code = "if flag:\n    return 'early'\nresult = {'fell': 'through'}\n"
    assert await run_ok(runner, code, {"flag": False}) == {"fell": "through"}


async def test_wrapped_code_may_reassign_an_input(runner: PythonRunner) -> None:
    code = "rows = [r for r in rows if r]\nif not rows:\n    return None\nreturn len(rows)\n"
    assert await run_ok(runner, code, {"rows": [1, 0, 2]}) == 2


async def test_return_inside_nested_function_is_not_top_level(runner: PythonRunner) -> None:
    code = "def helper():\n    return 5\nresult = helper() + 1\n"
    assert await run_ok(runner, code) == 6


async def test_main_gets_matching_inputs_only(runner: PythonRunner) -> None:
    code = "def main(a, b=10):\n    return {'a': a, 'b': b}\n"
    assert await run_ok(runner, code, {"a": 1, "other": 2}) == {"a": 1, "b": 10}


async def test_main_with_kwargs_gets_every_input(runner: PythonRunner) -> None:
    code = "def main(a, **rest):\n    return {'a': a, 'rest': rest}\n"
    assert await run_ok(runner, code, {"a": 1, "b": 2}) == {"a": 1, "rest": {"b": 2}}


async def test_main_is_not_called_when_result_is_set(runner: PythonRunner) -> None:
    code = "result = 'assigned'\ndef main():\n    raise RuntimeError('must not run')\n"
    assert await run_ok(runner, code) == "assigned"


async def test_async_main_is_awaited(runner: PythonRunner) -> None:
    code = "import asyncio\nasync def main(n):\n    await asyncio.sleep(0.01)\n    return n + 1\n"
    assert await run_ok(runner, code, {"n": 1}) == 2


async def test_main_guard_does_not_run_main_twice(runner: PythonRunner) -> None:
    code = "def main():\n    print('ran')\n    return 1\nif __name__ == '__main__':\n    main()\n"
    outcome = await runner.run(code, {}, context=CONTEXT)
    assert outcome.data == 1
    assert outcome.stdout == "ran\n"


async def test_nothing_returned_yields_output(runner: PythonRunner) -> None:
    code = "import sys\nprint('out')\nprint('err', file=sys.stderr)\n"
    assert await run_ok(runner, code) == {"stdout": "out\n", "stderr": "err\n"}


async def test_falsy_result_is_still_a_result(runner: PythonRunner) -> None:
    assert await run_ok(runner, "result = 0") == 0
    assert await run_ok(runner, "return []") == []


async def test_non_serialisable_values_are_converted(runner: PythonRunner) -> None:
    code = (
        "import datetime, decimal\n"
        "class Thing:\n    def __str__(self):\n        return 'a thing'\n"
        "result = {'when': datetime.datetime(2024, 5, 1, 12, 30), 'tags': {'b', 'a'},\n"
        "          'price': decimal.Decimal('1.50'), 'thing': Thing(), 'pair': (1, 2)}\n"
    )
    assert await run_ok(runner, code) == {
        "when": "2024-05-01 12:30:00",
        "tags": ["a", "b"],
        "price": "1.50",
        "thing": "a thing",
        "pair": [1, 2],
    }


async def test_large_payloads_cross_the_pipes(runner: PythonRunner) -> None:
    # Several times a pipe's buffer in both directions.
    blob = "\u00e9" * 2_000_000
    assert await run_ok(runner, "result = {'blob': blob, 'size': len(blob)}", {"blob": blob}) == {
        "blob": blob,
        "size": 2_000_000,
    }


async def test_circular_result_is_an_error(runner: PythonRunner) -> None:
    outcome = await run_failing(runner, "result = []\nresult.append(result)")
    assert outcome.error is not None
    assert outcome.error.startswith("result is not JSON-serialisable")


# Injected names


async def test_inputs_are_globals_and_input_data_args_are_copies(runner: PythonRunner) -> None:
    code = (
        "input_data['extra'] = 1\n"
        "result = {'message': message, 'count': count, 'input_data': input_data, 'args': args}\n"
    )
    assert await run_ok(runner, code, {"message": "m", "count": 3}) == {
        "message": "m",
        "count": 3,
        "input_data": {"message": "m", "count": 3, "extra": 1},
        "args": {"message": "m", "count": 3},
    }


async def test_input_key_named_input_data_wins(runner: PythonRunner) -> None:
    # C1: test_end_with_action reads the key's value, test_args_passing the whole dict.
    inputs = {"input_data": {"table": "users"}, "other": 1}
    code = "result = {'table': input_data['table'], 'args': args}"
    assert await run_ok(runner, code, inputs) == {"table": "users", "args": inputs}


async def test_input_key_named_args_wins(runner: PythonRunner) -> None:
    inputs = {"args": [1, 2], "other": 1}
    assert await run_ok(runner, "result = {'args': args, 'input_data': input_data}", inputs) == {
        "args": [1, 2],
        "input_data": inputs,
    }


async def test_context_variables_execution_id_and_step(runner: PythonRunner) -> None:
    code = (
        "result = {'keys': sorted(context.keys()), 'variables': variables,\n"
        "          'execution_id': execution_id, 'step': step}\n"
    )
    assert await run_ok(runner, code, variables={"earlier": {"rows": 2}}) == {
        "keys": ["args", "execution_id", "server_url", "step", "variables"],
        "variables": {"earlier": {"rows": 2}},
        "execution_id": "exec-42",
        "step": "transform",
    }


async def test_variables_default_to_an_empty_dict(runner: PythonRunner) -> None:
    assert await run_ok(runner, "result = variables") == {}


async def test_libs_are_imported_before_the_code(runner: PythonRunner) -> None:
    # C2: test_vars_simple's set_vars uses logging and os without importing them.
    code = (
        "logger = logging.getLogger('set_vars')\n"
        "logger.info('context keys: %s', list(context.keys()))\n"
        "result = {'sep': os.sep, 'logger': logger.name, 'path': p.join('a', 'b')}\n"
    )
    libs = {"os": "os", "logging": "logging", "p": "os.path"}
    assert await run_ok(runner, code, libs=libs) == {"sep": "/", "logger": "set_vars", "path": "a/b"}


async def test_without_libs_the_names_are_undefined(runner: PythonRunner) -> None:
    outcome = await run_failing(runner, "result = logging.getLogger('x').name")
    assert outcome.error == "NameError: name 'logging' is not defined"


async def test_unknown_lib_is_an_error(runner: PythonRunner) -> None:
    outcome = await runner.run("result = 1", {}, context=CONTEXT, libs={"x": "no_such_module_here"})
    assert not outcome.ok
    assert outcome.error == "ModuleNotFoundError: No module named 'no_such_module_here'"


# Output capture and errors


async def test_stdout_and_stderr_capture_includes_nested_functions(runner: PythonRunner) -> None:
    code = (
        "import sys, subprocess\n"
        "def helper():\n    print('from helper')\n    sys.stderr.write('warn\\n')\n"
        "helper()\n"
        "subprocess.run(['echo', 'from a subprocess'], check=True)\n"
        "result = 1\n"
    )
    outcome = await runner.run(code, {}, context=CONTEXT)
    assert outcome.ok
    assert outcome.stdout == "from helper\nfrom a subprocess\n"
    assert outcome.stderr == "warn\n"


async def test_output_beyond_the_limit_is_truncated() -> None:
    async with PythonRunner(processes=1, max_output_bytes=100) as runner:
        outcome = await runner.run(
            "print('x' * 1000)\nprint('y', file=__import__('sys').stderr)", {}, context=CONTEXT
        )
        assert outcome.stdout == "x" * 100 + "\n[output truncated at 100 bytes]"
        assert outcome.stderr == "y\n"
        # The budget is per call.
        assert (await runner.run("print('z')", {}, context=CONTEXT)).stdout == "z\n"


async def test_exception_becomes_error_text_with_traceback(runner: PythonRunner) -> None:
    outcome = await run_failing(runner, "print('before')\ndef f():\n    return 1 / 0\nf()\n")
    assert outcome.error == "ZeroDivisionError: division by zero"
    assert outcome.stdout == "before\n"
    assert 'File "<python step>", line 3, in f' in outcome.stderr
    assert "return 1 / 0" in outcome.stderr
    assert outcome.stderr.rstrip().endswith("ZeroDivisionError: division by zero")


async def test_failed_assert(runner: PythonRunner) -> None:
    assert (await run_failing(runner, "assert 1 == 2")).error == "AssertionError"
    outcome = await run_failing(runner, "assert False, 'Expected 4 users'")
    assert outcome.error == "AssertionError: Expected 4 users"


async def test_syntax_error(runner: PythonRunner) -> None:
    outcome = await run_failing(runner, "result = (")
    assert outcome.error is not None
    assert outcome.error.startswith("SyntaxError: ")


async def test_exception_in_main(runner: PythonRunner) -> None:
    outcome = await run_failing(runner, "def main(n):\n    raise ValueError(f'bad {n}')\n", {"n": 7})
    assert outcome.error == "ValueError: bad 7"


async def test_sys_exit_zero_keeps_the_result(runner: PythonRunner) -> None:
    assert await run_ok(runner, "import sys\nresult = 'done'\nsys.exit(0)\nresult = 'not reached'") == "done"
