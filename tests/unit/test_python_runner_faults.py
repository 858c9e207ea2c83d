"""The python runner survives what user code does to its process, and bounds time and concurrency."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers.waiting import wait_until
from tests.unit.test_python_runner import CONTEXT
from worker.tools.python_runner import PythonRunner, PythonRunnerError

# Marks that it runs (the file `started` names), then sleeps well past any test.
SLEEPER = "open(started, 'w').close()\nimport time\ntime.sleep(30)"


@pytest.fixture
async def runner() -> AsyncIterator[PythonRunner]:
    async with PythonRunner(processes=2) as started:
        yield started


async def assert_works(runner: PythonRunner) -> None:
    """Both children serve again (two concurrent calls need two live children)."""
    outcomes = await asyncio.gather(
        *(runner.run("result = n * 2", {"n": n}, context=CONTEXT) for n in (1, 2))
    )
    assert [o.data for o in outcomes] == [2, 4]


async def test_timeout_kills_the_child_and_the_runner_recovers(runner: PythonRunner) -> None:
    started = time.perf_counter()
    outcome = await runner.run("print('looping')\nwhile True:\n    pass\n", {}, context=CONTEXT, timeout=0.5)
    assert time.perf_counter() - started < 3
    assert not outcome.ok
    assert outcome.error == "timeout: exceeded 0.5s"
    assert outcome.stdout == "looping\n"
    assert outcome.duration_ms >= 500
    await assert_works(runner)


def is_running(pid: int) -> bool:
    """False once the process is gone or a zombie waiting for whatever reaps orphans here."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def test_timeout_also_kills_subprocesses_of_user_code(runner: PythonRunner) -> None:
    code = (
        "import subprocess\nprint(subprocess.Popen(['sleep', '60']).pid, flush=True)\nwhile True:\n    pass\n"
    )
    outcome = await runner.run(code, {}, context=CONTEXT, timeout=0.5)
    assert outcome.error == "timeout: exceeded 0.5s"
    pid = int(outcome.stdout)
    await wait_until(lambda: not is_running(pid), what="the subprocess to end with the timeout", within=5)


async def test_timeout_is_not_hit_by_fast_code(runner: PythonRunner) -> None:
    outcome = await runner.run("result = 1", {}, context=CONTEXT, timeout=5)
    assert outcome.ok


async def test_os_exit(runner: PythonRunner) -> None:
    outcome = await runner.run("import os\nprint('last words')\nos._exit(3)\n", {}, context=CONTEXT)
    assert not outcome.ok
    assert outcome.error == "python process exited unexpectedly (exit code 3)"
    assert outcome.stdout == "last words\n"
    await assert_works(runner)


async def test_sys_exit_with_a_code_is_an_error(runner: PythonRunner) -> None:
    outcome = await runner.run("import sys\nsys.exit(2)\n", {}, context=CONTEXT)
    assert not outcome.ok
    assert outcome.error == "SystemExit: 2"
    await assert_works(runner)


async def test_segfault(runner: PythonRunner) -> None:
    outcome = await runner.run("import ctypes\nctypes.string_at(0)\n", {}, context=CONTEXT)
    assert not outcome.ok
    assert outcome.error == "python process exited unexpectedly (killed by SIGSEGV)"
    # faulthandler's report names the user's line.
    assert 'File "<python step>", line 2' in outcome.stderr
    await assert_works(runner)


async def test_keyboard_interrupt_does_not_kill_the_child() -> None:
    async with PythonRunner(processes=1) as runner:
        get_pid = "import os\nresult = os.getpid()"
        before = await runner.run(get_pid, {}, context=CONTEXT)
        outcome = await runner.run("raise KeyboardInterrupt", {}, context=CONTEXT)
        assert outcome.error == "KeyboardInterrupt"
        assert (await runner.run(get_pid, {}, context=CONTEXT)).data == before.data


async def test_no_state_leaks_between_calls_in_one_child() -> None:
    async with PythonRunner(processes=1) as runner:
        first = await runner.run(
            "import os\nleaked = 1\nos.chdir('/')\nos.environ['LEAKED'] = '1'\nresult = os.getpid()",
            {"only_first": True},
            context=CONTEXT,
        )
        second = await runner.run(
            "import os\nresult = {'pid': os.getpid(), 'names': sorted(n for n in ('leaked', 'only_first') "
            "if n in globals()), 'cwd': os.getcwd(), 'env': os.environ.get('LEAKED')}",
            {},
            context=CONTEXT,
        )
        assert second.data["pid"] == first.data, "both calls must run in the same child"
        assert second.data["names"] == []
        assert second.data["cwd"] != "/"
        assert second.data["env"] is None


async def test_children_run_concurrently(runner: PythonRunner) -> None:
    started = time.perf_counter()
    outcomes = await asyncio.gather(
        *(runner.run("import time\ntime.sleep(0.5)\nresult = 1", {}, context=CONTEXT) for _ in range(2))
    )
    elapsed = time.perf_counter() - started
    assert all(o.ok for o in outcomes)
    assert elapsed < 0.9, f"two 0.5 s sleeps took {elapsed:.2f} s on two children"


async def test_callers_beyond_the_pool_wait() -> None:
    async with PythonRunner(processes=1) as runner:
        started = time.perf_counter()
        outcomes = await asyncio.gather(
            *(runner.run("import time\ntime.sleep(0.3)\nresult = 1", {}, context=CONTEXT) for _ in range(2))
        )
        assert all(o.ok for o in outcomes)
        assert time.perf_counter() - started >= 0.6
        # The timeout bounds the execution, not the wait for a free child.
        assert all(o.duration_ms < 550 for o in outcomes)


async def test_cancelled_call_kills_the_child(runner: PythonRunner, tmp_path: Path) -> None:
    started = tmp_path / "started"
    call = asyncio.create_task(runner.run(SLEEPER, {"started": str(started)}, context=CONTEXT))
    await wait_until(started.exists, what="the call to be running in a child")
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await assert_works(runner)


async def test_event_loop_stays_responsive_during_a_busy_call(runner: PythonRunner) -> None:
    call = asyncio.create_task(runner.run("while True:\n    pass", {}, context=CONTEXT, timeout=1))
    ticks = 0
    while not call.done():
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks > 50
    assert (await call).error == "timeout: exceeded 1s"


async def test_median_overhead_of_empty_code(
    runner: PythonRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    durations = []
    for _ in range(50):
        started = time.perf_counter()
        outcome = await runner.run("", {}, context=CONTEXT)
        durations.append((time.perf_counter() - started) * 1000)
        assert outcome.ok
    median = statistics.median(durations)
    with capsys.disabled():
        print(f"\npython runner: median overhead of an empty call {median:.2f} ms over 50 calls")
    assert median < 50


async def test_shutdown_is_idempotent_and_ends_service() -> None:
    runner = PythonRunner(processes=1)
    with pytest.raises(PythonRunnerError):
        await runner.run("result = 1", {}, context=CONTEXT)
    await runner.start()
    assert (await runner.run("result = 1", {}, context=CONTEXT)).ok
    await runner.shutdown()
    await runner.shutdown()
    with pytest.raises(PythonRunnerError):
        await runner.run("result = 1", {}, context=CONTEXT)


async def test_shutdown_fails_calls_in_flight_and_waiting(tmp_path: Path) -> None:
    runner = PythonRunner(processes=1)
    await runner.start()
    started = tmp_path / "started"
    in_flight = asyncio.create_task(runner.run(SLEEPER, {"started": str(started)}, context=CONTEXT))
    waiting = asyncio.create_task(runner.run(SLEEPER, {"started": str(tmp_path / "second")}, context=CONTEXT))
    # The first call runs in the only child; the second has queued behind it meanwhile.
    await wait_until(started.exists, what="the first call to be running in the child")
    await runner.shutdown()
    outcome = await in_flight
    assert not outcome.ok
    assert outcome.error == "python process exited unexpectedly (killed by SIGKILL)"
    with pytest.raises(PythonRunnerError):
        await waiting


def test_invalid_pool_size() -> None:
    with pytest.raises(ValueError, match="processes"):
        PythonRunner(processes=0)
