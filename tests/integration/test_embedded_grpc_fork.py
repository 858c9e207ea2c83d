"""Embedded Postgres is stopped and started by a process that is busy with gRPC.

The supervisor probes services over gRPC and then restarts Postgres; a test session does both
all the time. Switching to Postgres's account used to happen in a `fork()`ed child, where gRPC's
fork handlers sometimes killed the child before `exec` (measured with `/bin/true`: one fork in
two hundred with two threads calling gRPC, one in four with sixteen): `pg_ctl` then "failed" with
SIGABRT or SIGBUS and the server was neither stopped nor started. With the old code this test
failed six runs of six. Only root switches accounts, so that is where this can fail; as another
user Postgres runs as that user and nothing forks to switch.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from noetl_mesh.embedded import EmbeddedPostgres

CALLERS = 16
CYCLES = 20


@pytest.fixture
def grpc_at_work() -> Iterator[None]:
    """A gRPC server in this process and CALLERS threads calling it without pause."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    stop = threading.Event()

    def call() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while not stop.is_set():
                stub.Check(health_pb2.HealthCheckRequest(), timeout=5)

    callers = [threading.Thread(target=call, daemon=True) for _ in range(CALLERS)]
    for caller in callers:
        caller.start()
    try:
        yield
    finally:
        stop.set()
        for caller in callers:
            caller.join(timeout=10)
        server.stop(grace=None)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root switches to Postgres's account")
def test_postgres_stops_and_starts_while_grpc_is_at_work(tmp_path: Path, grpc_at_work: None) -> None:
    server = EmbeddedPostgres(tmp_path / "pg", port=0)
    server.start()
    try:
        for _ in range(CYCLES):
            server.stop()
            assert server.pid() is None
            server.start()
            assert server.pid() is not None
    finally:
        server.stop()
