"""The local mesh supervisor.

`up()` starts Postgres, NATS and then each mesh process in order, waiting for each to be ready
before starting the next; `down()` stops them in reverse. Each process runs in a session of its
own with output to <run dir>/logs/<name>.log, so it outlives the command that started it and a
later `noetl-mesh down` finds it through <run dir>/state.json.
"""

from __future__ import annotations

import dataclasses
import enum
import fcntl
import logging
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import NoReturn, Self

import asyncpg

from noetl_mesh import procs, state
from noetl_mesh.config import Ports, StackConfig
from noetl_mesh.credentials import MeshCredentials, current_credentials, mesh_credentials
from noetl_mesh.embedded import EmbeddedNats, EmbeddedPostgres
from noetl_mesh.errors import StartError
from noetl_mesh.kek import kek_environment
from noetl_mesh.mesh import ProcessSpec, mesh_environment, mesh_processes
from noetl_mesh.probes import LIFE_MARKER, ProbeFailed
from noetl_mesh.query_role import ensure_query_role
from noetl_mesh.state import InfraState, ProcessState, StackInfo

log = logging.getLogger(__name__)

ProcessFactory = Callable[[Ports], Sequence[ProcessSpec]]
"""Builds the process list once ports are resolved; tests pass their own to supervise fakes."""

_POLL = 0.1
SUPERVISOR_PID_FILE = "supervisor.pid"
LOG_ROTATE_BYTES = 20 * 1024 * 1024


class Health(enum.Enum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"


@dataclass(frozen=True)
class StatusRow:
    name: str
    pid: int | None
    alive: bool
    address: str
    log: Path | None
    restarts: int = 0
    shard: int | None = None
    database: str = ""  # Postgres: the cluster database; a shard's process: the shard's database


@dataclass(frozen=True)
class StackStatus:
    rows: tuple[StatusRow, ...]

    @property
    def health(self) -> Health:
        alive = [row.alive for row in self.rows]
        if not any(alive):
            return Health.DOWN
        return Health.UP if all(alive) else Health.DEGRADED


class Stack:
    """A local mesh rooted at `config.run_dir`. Methods block; none of them needs an event loop."""

    def __init__(self, config: StackConfig, processes: ProcessFactory = mesh_processes) -> None:
        self._config = config
        self._processes = processes
        self._logs = config.run_dir / "logs"
        # Built even when external servers are configured: down() stops whatever embedded server
        # runs in this run dir, however the stack that started it was configured.
        self._postgres = self._embedded_postgres(config.ports.postgres)
        self._nats = self._embedded_nats(config.ports.nats)
        # Our own children, kept so they can be reaped; a later command only has their pids.
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._supervisor: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self.up()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()

    @property
    def run_dir(self) -> Path:
        return self._config.run_dir

    def info(self) -> StackInfo | None:
        """The recorded stack, whether or not its processes still run."""
        return state.load(self.run_dir)

    def up(self) -> StackInfo:
        """Start the stack, or return the running one. Of a partly running stack only what is
        missing is started (`repair`): Postgres, NATS and live processes are left alone.

        Raises:
            StartError: a process exited or did not become ready; a fresh start stops everything.
            InfraError: embedded Postgres or NATS failed.
        """
        with self._locked():
            current = state.load(self.run_dir)
            if current is None:
                return self._start()
            wanted = self._config.shards
            if wanted is not None and wanted != current.ports.shard_count:
                raise StartError(
                    f"the mesh is up with {current.ports.shard_count} shard(s), not {wanted}; "
                    "run `noetl-mesh down` first to change the shard count",
                    name="stack",
                    log_tail="",
                )
            return self._repair(current)

    def repair(self) -> StackInfo | None:
        """Starts whatever of the recorded stack is not running, on the ports it had, and leaves
        the rest alone; None (nothing done) when no stack is recorded. A restarted process never
        inherits `NOETL_FAILPOINTS`: a failpoint fires in the first life of a process only.

        Raises:
            StartError: a restarted process exited or did not become ready.
            InfraError: embedded Postgres or NATS failed to start again.
        """
        with self._locked():
            current = state.load(self.run_dir)
            return self._repair(current) if current is not None else None

    def _repair(self, info: StackInfo) -> StackInfo:
        if info.postgres.embedded and self._postgres.pid() is None:
            log.info("postgres: not running; starting it again")
            self._postgres = self._embedded_postgres(_port_of(info.postgres.url))
            self._postgres.start()
        if info.nats.embedded and self._nats.pid() is None:
            log.info("nats: not running; starting it again")
            self._nats.stop()  # reaps the dead server if it was our child
            # Kept: the new server is our child, and `down` must reap it.
            self._nats = self._embedded_nats(_port_of(info.nats.url))
            self._nats.start()
        shared = {
            **self._config.base_env,
            **mesh_environment(
                info.ports, pg_dsn=self._local(info.pg_dsn), nats_url=info.nats_url, run_dir=self.run_dir
            ),
        }
        shared.pop("NOETL_FAILPOINTS", None)
        kek = kek_environment(self.run_dir, self._config.base_env)
        credentials = current_credentials(self.run_dir, self._config.base_env)
        if credentials is not None:
            shared.update(credentials.shared())
        specs = {spec.name: spec for spec in self._processes(info.ports)}
        processes = list(info.processes)
        for index, process in enumerate(processes):
            if procs.is_alive(process.pid, process.start_ticks):
                continue
            spec = specs[process.name]
            log.info("%s: not running; starting it again", process.name)
            started = time.monotonic()
            env = {
                **shared,
                **spec.env,
                **_shard_env(spec, info, self._local),
                "NOETL_SERVER_MACHINE_ID": str(index + 1),
            }
            env.update(self._secrets_for(spec, kek, credentials, _database_of(spec, info)))
            fresh = self._launch(spec, env)
            processes[index] = dataclasses.replace(fresh, restarts=process.restarts + 1)
            info = dataclasses.replace(info, processes=tuple(processes))
            state.save(info)
            self._await_ready(spec, fresh, started)
        if self._config.supervise:
            self._start_supervisor()
        return info

    def _start_supervisor(self) -> None:
        """One supervisor per run dir (`noetl_mesh.supervisor`), with the mesh's environment."""
        if self._supervisor_pid() is not None:
            return
        with (self._logs / "supervisor.log").open("ab") as log_file:
            self._supervisor = subprocess.Popen(
                [sys.executable, "-m", "noetl_mesh.supervisor", str(self.run_dir)],
                cwd=self.run_dir,
                env=dict(self._config.base_env),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # Written here, not by the child, so a second `up` right after this one sees it.
        (self.run_dir / SUPERVISOR_PID_FILE).write_text(str(self._supervisor.pid))

    def _supervisor_pid(self) -> int | None:
        try:
            pid = int((self.run_dir / SUPERVISOR_PID_FILE).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        alive = procs.is_alive(pid) and "noetl_mesh.supervisor" in procs.command_line(pid)
        return pid if alive else None

    def _stop_supervisor(self) -> None:
        pid = self._supervisor_pid()
        if pid is not None:
            procs.terminate(pid, grace=10.0)
        if self._supervisor is not None:  # ours: reaped, not left a zombie
            self._supervisor.wait()
            self._supervisor = None
        (self.run_dir / SUPERVISOR_PID_FILE).unlink(missing_ok=True)

    def down(self) -> None:
        """Stop every process in reverse start order, then the embedded servers; forget the stack.

        Raises:
            InfraError: embedded Postgres would not stop.
        """
        with self._locked():
            self._teardown(state.load(self.run_dir))

    def status(self) -> StackStatus:
        """Liveness of each recorded component; no rows when no stack is recorded."""
        current = state.load(self.run_dir)
        return self._status(current) if current is not None else StackStatus(())

    def _start(self) -> StackInfo:
        self._logs.mkdir(parents=True, exist_ok=True)
        ports = self._config.ports.with_shards(self._config.shards or 1).resolve_processes()
        info: StackInfo | None = None
        try:
            postgres = self._start_postgres()
            nats = self._start_nats()
            shard_dsns = shard_databases(postgres.url, ports.shard_count)
            info = StackInfo(self.run_dir, time.time(), ports, postgres, nats, (), shard_dsns)
            state.save(info)
            self._migrate(postgres.url, *shard_dsns)
            shared = {
                **self._config.base_env,
                **mesh_environment(
                    ports, pg_dsn=self._local(postgres.url), nats_url=nats.url, run_dir=self.run_dir
                ),
            }
            kek = kek_environment(self.run_dir, self._config.base_env)
            specs = self._processes(ports)
            credentials = mesh_credentials(self.run_dir, self._config.base_env, (spec.name for spec in specs))
            if credentials is not None:
                shared.update(credentials.shared())
            for machine_id, spec in enumerate(specs, start=1):
                started = time.monotonic()
                env = {
                    **shared,
                    **spec.env,
                    **_shard_env(spec, info, self._local),
                    "NOETL_SERVER_MACHINE_ID": str(machine_id),
                }
                env.update(self._secrets_for(spec, kek, credentials, _database_of(spec, info)))
                process = self._launch(spec, env)
                # Recorded before the wait, so an interrupted `up` leaves nothing `down` cannot find.
                info = info.with_process(process)
                state.save(info)
                self._await_ready(spec, process, started)
        except BaseException:
            self._teardown(info)
            raise
        if self._config.supervise:
            self._start_supervisor()
        return info

    def _migrate(self, *dsns: str) -> None:
        """Creates the shard databases that are missing and applies every context's schema to
        each database before any service starts (idempotent).

        Raises:
            StartError: a migration statement failed.
        """
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "kernel.migrate", "--create", *dict.fromkeys(dsns)],
            capture_output=True,
            text=True,
            timeout=self._config.ready_timeout,
            check=False,
        )
        if result.returncode != 0:
            raise StartError("schema migration failed", name="migrate", log_tail=result.stderr[-4000:])
        log.info("schema: applied (%.1fs)", time.monotonic() - started)

    def _secrets_for(
        self, spec: ProcessSpec, kek: Mapping[str, str], credentials: MeshCredentials | None, dsn: str
    ) -> dict[str, str]:
        """What only this process gets: its own mesh token, the wallet's key, the SQL login."""
        extra = credentials.for_process(spec.name) if credentials is not None else {}
        if spec.holds_kek:
            extra.update(kek)
        if spec.runs_sql:
            extra.update(self._query_role(dsn))
        return extra

    def _query_role(self, dsn: str) -> dict[str, str]:
        """`NOETL_POSTGRES_EXECUTE_DSN` for the execution service, unless the caller set one.

        A login that may not create roles (an external Postgres) leaves it unset: the stack still
        starts, and `/api/postgres/execute` without a credential says what to configure.
        """
        if self._config.base_env.get("NOETL_POSTGRES_EXECUTE_DSN", "").strip():
            return {}
        try:
            return {"NOETL_POSTGRES_EXECUTE_DSN": ensure_query_role(dsn)}
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning(
                "postgres/execute role not made (%s); set NOETL_POSTGRES_EXECUTE_DSN to a least-privilege "
                "login to run ad-hoc SQL (docs/security.md)",
                exc,
            )
            return {}

    def _embedded_postgres(self, port: int) -> EmbeddedPostgres:
        return EmbeddedPostgres(self.run_dir / "postgres", port=port, log_path=self._logs / "postgres.log")

    def _local(self, dsn: str) -> str:
        """A DSN as the mesh's processes get it: the embedded Postgres through its unix socket."""
        return dsn if self._config.pg_dsn is not None else self._postgres.local_dsn(dsn)

    def _embedded_nats(self, port: int) -> EmbeddedNats:
        return EmbeddedNats(
            self.run_dir / "nats",
            port=port,
            monitor_port=self._config.ports.nats_monitor,
            log_path=self._logs / "nats.log",
        )

    def _start_postgres(self) -> InfraState:
        if self._config.pg_dsn is not None:
            return InfraState("postgres", self._config.pg_dsn, embedded=False, log=None)
        started = time.monotonic()
        dsn = self._postgres.start()
        log.info("postgres: ready at %s (%.1fs)", _address(dsn, 5432), time.monotonic() - started)
        return InfraState("postgres", dsn, embedded=True, log=self._postgres.log_path)

    def _start_nats(self) -> InfraState:
        if self._config.nats_url is not None:
            return InfraState("nats", self._config.nats_url, embedded=False, log=None)
        started = time.monotonic()
        url = self._nats.start()
        log.info("nats: ready at %s (%.1fs)", url, time.monotonic() - started)
        return InfraState("nats", url, embedded=True, log=self._nats.log_path)

    def _launch(self, spec: ProcessSpec, env: Mapping[str, str]) -> ProcessState:
        log_path = self._logs / f"{spec.name}.log"
        _rotate(log_path)
        with log_path.open("ab") as log_file:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log_file.write(f"{LIFE_MARKER}{spec.name} at {stamp} ===\n".encode())
            log_file.flush()
            child = subprocess.Popen(
                spec.argv,
                cwd=self.run_dir,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._children[child.pid] = child
        log.info("%s: started (pid %d), waiting for %s", spec.name, child.pid, spec.readiness.describe())
        return ProcessState(
            spec.name, child.pid, procs.start_ticks(child.pid), spec.address, log_path, shard=spec.shard
        )

    def _await_ready(self, spec: ProcessSpec, process: ProcessState, started: float) -> None:
        child = self._children[process.pid]
        deadline = started + self._config.ready_timeout
        while True:
            code = child.poll()
            if code is not None:
                _fail(f"{spec.name} exited with code {code} before it was ready", process)
            try:
                if spec.readiness.ready(started, process.log):
                    break
            except ProbeFailed as exc:
                _fail(f"{spec.name} {exc}", process)
            if time.monotonic() > deadline:
                _fail(
                    f"{spec.name} was not ready after {self._config.ready_timeout:g}s "
                    f"(waited for {spec.readiness.describe()})",
                    process,
                )
            time.sleep(_POLL)
        log.info("%s: ready (%.1fs)", spec.name, time.monotonic() - started)

    def _teardown(self, info: StackInfo | None) -> None:
        # First: a supervisor would start again what is being stopped.
        self._stop_supervisor()
        if info is not None:
            for process in reversed(info.processes):
                procs.terminate(process.pid, process.start_ticks, self._config.stop_grace)
                child = self._children.pop(process.pid, None)
                if child is not None:
                    child.wait()
                log.info("%s: stopped", process.name)
        # Children of ours that the record no longer names (killed, then restarted elsewhere).
        for child in self._children.values():
            if child.poll() is None:
                procs.terminate(child.pid, None, self._config.stop_grace)
            child.wait()
        self._children.clear()
        # Embedded servers in this run dir are ours whatever the record says, and a record may be
        # missing when an earlier `up` died before writing it.
        if self._nats.pid() is not None:
            self._nats.stop()
            log.info("nats: stopped")
        if self._postgres.pid() is not None:
            self._postgres.stop()
            log.info("postgres: stopped")
        state.remove(self.run_dir)

    def _status(self, info: StackInfo) -> StackStatus:
        rows = [
            # The cluster database; each shard process's row names its own.
            dataclasses.replace(
                self._infra_row(info.postgres, self._postgres.pid(), 5432), database=_database(info.pg_dsn)
            ),
            self._infra_row(info.nats, self._nats.pid(), 4222),
        ]
        for p in info.processes:
            alive = procs.is_alive(p.pid, p.start_ticks)
            database = _database(info.shard_dsns[p.shard]) if p.shard is not None else ""
            rows.append(StatusRow(p.name, p.pid, alive, p.address, p.log, p.restarts, p.shard, database))
        return StackStatus(tuple(rows))

    @staticmethod
    def _infra_row(infra: InfraState, embedded_pid: int | None, default_port: int) -> StatusRow:
        address = _address(infra.url, default_port)
        if infra.embedded:
            return StatusRow(infra.name, embedded_pid, embedded_pid is not None, address, infra.log)
        host, _, port = address.rpartition(":")
        reachable = bool(host) and port.isdigit() and procs.port_open(host, int(port))
        return StatusRow(infra.name, None, reachable, f"{address} (external)", None)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One up/down at a time per run dir."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with (self.run_dir / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


def _rotate(path: Path) -> None:
    """Logs are appended across restarts; one past `LOG_ROTATE_BYTES` moves to `<name>.1`."""
    try:
        if path.stat().st_size > LOG_ROTATE_BYTES:
            path.replace(path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass


def shard_databases(cluster_dsn: str, count: int) -> tuple[str, ...]:
    """One DSN per shard: with one shard the cluster database itself, else `<cluster>_shard_<k>`
    on the same server (created by the migration if missing)."""
    if count == 1:
        return (cluster_dsn,)
    parts = urllib.parse.urlsplit(cluster_dsn)
    name = _database(cluster_dsn)
    return tuple(urllib.parse.urlunsplit(parts._replace(path=f"/{name}_shard_{k}")) for k in range(count))


def _shard_env(spec: ProcessSpec, info: StackInfo, local: Callable[[str], str]) -> dict[str, str]:
    """A shard's process writes its shard's database; the cluster database stays NOETL_CLUSTER_PG_DSN."""
    return {} if spec.shard is None else {"NOETL_PG_DSN": local(info.shard_dsns[spec.shard])}


def _database_of(spec: ProcessSpec, info: StackInfo) -> str:
    """The DSN of the database the process writes: its shard's, else the cluster database."""
    return info.pg_dsn if spec.shard is None else info.shard_dsns[spec.shard]


def _database(dsn: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(dsn).path.lstrip("/"))


def _port_of(url: str) -> int:
    """The port a recorded server listened on (0, a free one, if the URL has none)."""
    try:
        return urllib.parse.urlsplit(url).port or 0
    except ValueError:
        return 0


def _address(url: str, default_port: int) -> str:
    """host:port of a URL-style DSN, without credentials (the result is printed)."""
    try:
        parts = urllib.parse.urlsplit(url)
        return f"{parts.hostname or '?'}:{parts.port or default_port}"
    except ValueError:
        return "?"


def _fail(message: str, process: ProcessState) -> NoReturn:
    raise StartError(message, name=process.name, log_tail=procs.tail(process.log))
