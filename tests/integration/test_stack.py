"""The supervisor against stand-in processes: start order, environment, readiness, failure, stop.

The real services are not needed here; tests/helpers/fake_process.py plays them. Postgres and
NATS are the session servers, passed in as external so the stack must leave them running.
"""

from __future__ import annotations

import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import pytest

from noetl_mesh import procs
from noetl_mesh.config import Ports, StackConfig
from noetl_mesh.embedded import EmbeddedNats, EmbeddedPostgres
from noetl_mesh.errors import StartError
from noetl_mesh.mesh import ProcessSpec
from noetl_mesh.probes import GrpcHealth, HttpHealth, Readiness, Settled
from noetl_mesh.stack import Health, Stack
from noetl_mesh.state import STATE_FILE
from tests.helpers.fake_process import load_record
from tests.helpers.infra import NatsServer, PgServer


def fake(name: str, kind: str, readiness: Readiness, env: dict[str, str] | None = None) -> ProcessSpec:
    argv = (sys.executable, "-m", "tests.helpers.fake_process", kind)
    return ProcessSpec(name, argv, readiness, env=env or {})


def config(
    run_dir: Path, pg: PgServer, nats: NatsServer, *, ready_timeout: float = 30.0, stop_grace: float = 5.0
) -> StackConfig:
    return StackConfig(
        run_dir=run_dir,
        ports=Ports.ephemeral(),
        pg_dsn=pg.dsn,
        nats_url=nats.url,
        ready_timeout=ready_timeout,
        stop_grace=stop_grace,
        supervise=False,  # these tests stop processes on purpose (the fault suite covers supervision)
    )


def assert_reachable(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    assert procs.port_open(parts.hostname, parts.port), f"{url} no longer answers"


def test_up_starts_in_order_with_the_mesh_environment_and_down_stops_all(
    tmp_path: Path, pg_server: PgServer, nats_server: NatsServer
) -> None:
    def processes(ports: Ports) -> Sequence[ProcessSpec]:
        catalog = f"127.0.0.1:{ports.catalog}"
        return [
            fake("catalog", "grpc", GrpcHealth(catalog), {"NOETL_GRPC_LISTEN": catalog}),
            fake("gateway", "http", HttpHealth(f"http://127.0.0.1:{ports.gateway}/health")),
            fake("worker", "sleep", Settled(0.3)),
        ]

    stack = Stack(config(tmp_path, pg_server, nats_server), processes)
    info = stack.up()

    assert [p.name for p in info.processes] == ["catalog", "gateway", "worker"]
    assert stack.info() == info
    assert stack.status().health is Health.UP
    records = [load_record(tmp_path, machine_id) for machine_id in (1, 2, 3)]
    assert [r.pid for r in records] == [p.pid for p in info.processes]
    for record in records:
        assert record.env["NOETL_PG_DSN"] == pg_server.dsn
        assert record.env["NOETL_NATS_URL"] == nats_server.url
        assert record.env["NOETL_CATALOG_ADDR"] == info.catalog_addr
        assert record.env["NOETL_EXECUTION_ADDRS"] == ",".join(info.execution_addrs)
        assert record.env["NOETL_PUBLIC_SERVER_URL"] == info.gateway_url
        assert record.env["NOETL_RUN_DIR"] == str(tmp_path)
    assert records[0].env["NOETL_GRPC_LISTEN"] == info.catalog_addr

    # A second `up`, from another Stack as a second command would be, finds the stack running.
    assert Stack(config(tmp_path, pg_server, nats_server), processes).up() == info

    stack.down()
    assert not any(procs.is_alive(p.pid, p.start_ticks) for p in info.processes)
    assert stack.status().health is Health.DOWN
    assert not (tmp_path / STATE_FILE).exists()
    assert_reachable(pg_server.dsn)
    assert_reachable(nats_server.url)


def test_a_process_dying_at_start_fails_up_and_stops_what_was_started(
    tmp_path: Path, pg_server: PgServer, nats_server: NatsServer
) -> None:
    def processes(ports: Ports) -> Sequence[ProcessSpec]:
        return [
            fake("first", "sleep", Settled(0.3)),
            fake("second", "crash", GrpcHealth(f"127.0.0.1:{ports.catalog}")),
            fake("third", "sleep", Settled(0.3)),
        ]

    stack = Stack(config(tmp_path, pg_server, nats_server), processes)
    with pytest.raises(StartError, match="second exited with code 1") as failure:
        stack.up()

    assert failure.value.name == "second"
    assert "boom: the fake process failed at start" in failure.value.log_tail
    assert not procs.is_alive(load_record(tmp_path, 1).pid)
    assert not (tmp_path / "logs" / "third.log").exists()
    assert not (tmp_path / STATE_FILE).exists()
    assert stack.status().health is Health.DOWN


def test_a_process_that_never_gets_ready_times_out_and_is_stopped(
    tmp_path: Path, pg_server: PgServer, nats_server: NatsServer
) -> None:
    def processes(ports: Ports) -> Sequence[ProcessSpec]:
        # Nothing listens on this port: the probe can never pass.
        return [fake("silent", "sleep", GrpcHealth(f"127.0.0.1:{ports.catalog}"))]

    stack = Stack(config(tmp_path, pg_server, nats_server, ready_timeout=1.0), processes)
    with pytest.raises(StartError, match=r"silent was not ready after 1s \(waited for gRPC health"):
        stack.up()
    assert not procs.is_alive(load_record(tmp_path, 1).pid)


def test_a_traceback_in_the_log_fails_a_settle_probe(
    tmp_path: Path, pg_server: PgServer, nats_server: NatsServer
) -> None:
    def processes(ports: Ports) -> Sequence[ProcessSpec]:
        return [fake("worker", "traceback", Settled(5.0))]

    stack = Stack(config(tmp_path, pg_server, nats_server), processes)
    with pytest.raises(StartError, match="worker logged a traceback") as failure:
        stack.up()
    assert "ValueError: bad configuration" in failure.value.log_tail
    assert not procs.is_alive(load_record(tmp_path, 1).pid)


def test_down_kills_a_process_that_ignores_sigterm(
    tmp_path: Path, pg_server: PgServer, nats_server: NatsServer
) -> None:
    def processes(ports: Ports) -> Sequence[ProcessSpec]:
        return [fake("stubborn", "stubborn", Settled(0.3))]

    stack = Stack(config(tmp_path, pg_server, nats_server, stop_grace=0.5), processes)
    (process,) = stack.up().processes
    stack.down()
    assert not procs.is_alive(process.pid, process.start_ticks)


def test_embedded_servers_are_started_and_stopped_by_the_stack(tmp_path: Path) -> None:
    run_dir = tmp_path / "mesh"
    stack = Stack(StackConfig(run_dir=run_dir, ports=Ports.ephemeral(), supervise=False), lambda ports: [])

    info = stack.up()
    assert info.postgres.embedded
    assert info.nats.embedded
    assert_reachable(info.pg_dsn)
    assert_reachable(info.nats_url)
    assert [(row.name, row.alive) for row in stack.status().rows] == [("postgres", True), ("nats", True)]

    # Even with its record gone, `down` stops the servers living in its run dir.
    (run_dir / STATE_FILE).unlink()
    stack.down()
    assert EmbeddedPostgres(run_dir / "postgres").pid() is None
    assert EmbeddedNats(run_dir / "nats").pid() is None
