"""`noetl_mesh.progress`: events folded into the terminal's steps and the `--json` document."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from noetl_mesh.progress import Event, Progress

T0 = datetime(2026, 8, 19, 15, 0, tzinfo=UTC)


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def ev(
    kind: str, node: str, ms: int, *, context: Any = None, error: str | None = None, cmd: int | None = None,
    iteration: int | None = None,
) -> Event:  # fmt: skip
    return Event(kind, node, at(ms), context, None, error, cmd, iteration)


def output(data: Any = None, **extra: Any) -> dict[str, Any]:
    return {"result": {"status": "success", "context": {"data": data, **extra}}}


def test_a_loop_keeps_each_iterations_result_in_index_order() -> None:
    progress = Progress()
    progress.apply(ev("playbook.initialized", "p", 0))
    progress.apply(ev("step.enter", "loop", 5, context={"iterations_expected": 2}))
    progress.apply(ev("command.issued", "loop", 6, cmd=11, iteration=0))
    progress.apply(ev("command.issued", "loop", 6, cmd=12, iteration=1))
    progress.apply(ev("call.done", "loop", 20, context=output({"i": 1}), cmd=12))
    progress.apply(ev("step.exit", "loop", 21, context=output({"i": 1}), cmd=12))
    assert progress.steps["loop"].state == "running"
    progress.apply(ev("call.done", "loop", 30, context=output({"i": 0}), cmd=11))
    progress.apply(ev("loop.done", "loop", 40))
    progress.apply(ev("playbook.completed", "p", 50))

    document = progress.document(7, "p", 1)
    assert document["status"] == "COMPLETED"
    assert document["duration_seconds"] == 0.05
    [loop] = document["steps"]
    assert loop == {
        "step": "loop", "state": "done", "duration_ms": 34.0, "result": [{"i": 0}, {"i": 1}],
        "error": None, "iterations": 2,
    }  # fmt: skip
    assert progress.line("loop") == "✓ loop done 2/2 34 ms"


def test_a_failed_step_keeps_its_error_and_stderr_and_a_late_completion_does_not_undo_it() -> None:
    progress = Progress()
    progress.apply(ev("command.issued", "s", 0, cmd=1))
    progress.apply(ev("command.started", "s", 2, cmd=1))
    failure = {
        "error": "ValueError: x",
        "result": {"status": "error", "context": {"error": "ValueError: x", "stderr": "a\nb\n"}},
    }
    assert progress.apply(ev("call.error", "s", 9, context=failure, cmd=1)) == "s"
    progress.apply(ev("command.completed", "s", 10, cmd=1))
    progress.apply(ev("playbook.failed", "p", 12, error="Failed steps: s"))

    step = progress.steps["s"]
    assert (step.state, step.error, step.stderr) == ("failed", "ValueError: x", "a\nb\n")
    assert progress.error == "Failed steps: s"
    assert progress.document(1, "p", 1)["steps"][0]["stderr"] == "a\nb\n"
