"""Which tracing interceptors a process installs (kernel/telemetry.py): all of them when it may
record spans, none when `setup_tracing` found nothing to export. Each case runs in a fresh
interpreter, as a service process starts: the tracer provider can be set once per process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_PROBE = (
    "from kernel import telemetry; telemetry.setup_tracing('probe'); "
    "print(len(telemetry.server_interceptors()), len(telemetry.client_interceptors()))"
)


def interceptors(**env: str) -> tuple[int, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    path = os.pathsep.join([str(ROOT), str(ROOT / "gen")])
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env={**clean, "PYTHONPATH": path, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    server, client = done.stdout.split()
    return int(server), int(client)


def test_a_process_that_records_nothing_installs_no_tracing_interceptor() -> None:
    assert interceptors(OTEL_TRACES_EXPORTER="none") == (0, 0)


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_TRACES_EXPORTER": "console"},
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_TRACES_SAMPLER": "always_on"},
    ],
    ids=["an exporter", "a sampler"],
)
def test_a_process_that_may_record_traces_every_call(env: dict[str, str]) -> None:
    server, client = interceptors(**env)
    assert server == 2 and client >= 1
