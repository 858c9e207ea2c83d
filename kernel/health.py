"""Liveness of a service's write path, reported on gRPC health.

A process whose database is gone still answers RPCs (with errors, or not at all while a query
hangs), so "the server is up" says little. `WritePathWatch` probes the write path every
`interval` seconds with a bounded probe; after `failures` failed probes in a row the process
reports NOT_SERVING on the standard gRPC health service (what Kubernetes probes, and what
`noetl-mesh status` reads), and SERVING again after the first probe that succeeds.

It is handed to the host among the registrars (it registers nothing itself), so every
service's `assemble` can add one without a second channel to the host.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2
from prometheus_client import Gauge

from kernel.lifecycle import Periodic

log = logging.getLogger(__name__)

WRITE_PATH_UP = Gauge("noetl_write_path_up", "1 while the write path's probe succeeds")


@dataclass
class WritePathWatch:
    probe: Callable[[], Awaitable[None]]
    interval: float = 2.0
    timeout: float = 5.0
    failures: int = 3

    def __call__(self, server: grpc.aio.Server) -> None:
        """A registrar that registers nothing: the host runs the watch (`watching`)."""

    def watching(self, servicer: health.aio.HealthServicer) -> Periodic:
        """The watch as a periodic task reporting on `servicer`; the host starts and stops it."""
        failed = 0

        async def probe_once() -> None:
            nonlocal failed
            try:
                await asyncio.wait_for(self.probe(), timeout=self.timeout)
            except Exception as exc:
                failed += 1
                if failed == self.failures:
                    log.error("write path failed %d probes in a row (%s): NOT_SERVING", failed, exc)
                    WRITE_PATH_UP.set(0)
                    await servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
                return
            if failed >= self.failures:
                log.info("write path back: SERVING")
                WRITE_PATH_UP.set(1)
                await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
            failed = 0

        WRITE_PATH_UP.set(1)
        return Periodic("write-path-watch", probe_once, self.interval)


def database_probe(pool: asyncpg.Pool) -> Callable[[], Awaitable[None]]:
    """A probe that takes a connection and writes through it (a temporary table is not needed:
    `txid_current()` assigns a transaction id, which a read-only or stuck server cannot)."""

    async def probe() -> None:
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT txid_current()")

    return probe
