"""Readiness probes: how the supervisor decides a freshly started process may take traffic."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from noetl_mesh import procs


class ProbeFailed(Exception):
    """The process will not become ready: waiting longer is pointless."""


class Readiness(Protocol):
    def describe(self) -> str:
        """What is being waited for, for error messages."""
        ...

    def ready(self, started_at: float, log: Path) -> bool:
        """One check. `started_at` is the process's time.monotonic() start.

        Raises:
            ProbeFailed: the process has visibly failed.
        """
        ...


@dataclass(frozen=True)
class GrpcHealth:
    """Ready when grpc.health.v1 reports the overall service ("") as SERVING."""

    address: str

    def describe(self) -> str:
        return f"gRPC health SERVING on {self.address}"

    def ready(self, started_at: float, log: Path) -> bool:
        # Imported here so that `noetl-mesh status` and friends do not pay for loading gRPC.
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with grpc.insecure_channel(self.address) as channel:
            try:
                response = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=1.0
                )
            except grpc.RpcError:
                return False
        return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


@dataclass(frozen=True)
class HttpHealth:
    """Ready when GET `url` answers 200."""

    url: str

    def describe(self) -> str:
        return f"GET {self.url} -> 200"

    def ready(self, started_at: float, log: Path) -> bool:
        return procs.http_ok(self.url)


TRACEBACK = "Traceback (most recent call last)"


@dataclass(frozen=True)
class Settled:
    """Ready once the process has stayed up `seconds` without logging a Python traceback.

    For processes that serve nothing to probe (the worker); a weak signal, but it catches the
    common failures: import errors, bad configuration, unreachable dependencies at start.
    """

    seconds: float = 1.0

    def describe(self) -> str:
        return f"alive for {self.seconds:g}s with no traceback in its log"

    def ready(self, started_at: float, log: Path) -> bool:
        if TRACEBACK in current_life(log):
            raise ProbeFailed("logged a traceback while starting")
        return time.monotonic() - started_at >= self.seconds


@dataclass(frozen=True)
class LogLine:
    """Ready once the process logged `marker` (and no traceback): for a process with nothing to
    probe over the network that can still say when it is really ready (the worker)."""

    marker: str

    def describe(self) -> str:
        return f"{self.marker!r} in its log"

    def ready(self, started_at: float, log: Path) -> bool:
        text = current_life(log)
        if TRACEBACK in text:
            raise ProbeFailed("logged a traceback while starting")
        return self.marker in text


# The launcher writes this line into a process's log before each start: logs are appended across
# restarts, and a probe must read only what the process now starting has written.
LIFE_MARKER = "=== noetl-mesh: starting "


def current_life(log: Path) -> str:
    """The log written since the last start ('' when there is no log yet)."""
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return text[text.rfind(LIFE_MARKER) :] if LIFE_MARKER in text else text
