"""Operating-system helpers: process identity, liveness and termination, log tails, ports, probes.

A pid alone is not an identity: after a reboot or a long uptime it may name an unrelated
process. Pids are therefore paired with the process start time from /proc (in clock ticks
since boot), and signals go only to a process whose start time still matches.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

_POLL = 0.05
# The lowest port `free_ports` picks: clear of the ports servers are usually set to (5432, 8080, 9090...).
_FIRST_PICKED_PORT = 20000
# Its own source: a test that seeds `random` must not make two processes pick the same ports.
_CHOOSER = random.SystemRandom()


def start_ticks(pid: int) -> int | None:
    """The start time of `pid` in clock ticks since boot, or None when no such process exists."""
    fields = _stat_fields(pid)
    # Field 22 of /proc/<pid>/stat; _stat_fields starts at field 3.
    return int(fields[19]) if fields else None


def is_alive(pid: int, ticks: int | None = None) -> bool:
    """Whether `pid` runs (zombies count as dead) and, when `ticks` is given, is still the same process."""
    _reap(pid)
    fields = _stat_fields(pid)
    if not fields or fields[0] in ("Z", "X"):
        return False
    return ticks is None or int(fields[19]) == ticks


def command_line(pid: int) -> str:
    """The command line of `pid` with arguments space-separated; empty when it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def terminate(pid: int, ticks: int | None = None, grace: float = 10.0) -> None:
    """SIGTERM the process (its whole group when it leads one), SIGKILL it after `grace` seconds.

    Returns once the process is gone; a process that is already gone is fine.
    """
    if not is_alive(pid, ticks):
        return
    _signal(pid, signal.SIGTERM)
    if wait_gone(pid, ticks, grace):
        return
    _signal(pid, signal.SIGKILL)
    wait_gone(pid, ticks, 5.0)


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file; empty when it does not exist."""
    try:
        with path.open("rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - 64 * 1024))
            data = file.read()
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports that are free on 127.0.0.1 right now, outside the kernel's
    ephemeral range when that leaves room.

    A port is chosen here and bound later by the process it is given to (and bound again by
    each restart of it). A port of the ephemeral range can be taken in between by any outgoing
    connection, which the kernel gives a local port of that range: the process then fails with
    "Address already in use". Below or above the range only an explicit bind can take it.
    All sockets stay bound until every port is chosen, so none is handed out twice.
    """
    low, high = _ephemeral_range()
    spans = [
        (first, last)
        for first, last in ((_FIRST_PICKED_PORT, low - 1), (high + 1, 65535))
        if last - first >= 1000
    ]
    sizes = [last - first for first, last in spans]
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        tries = 0
        while len(ports) < count and spans and tries < 50 * count:
            tries += 1
            first, last = _CHOOSER.choices(spans, weights=sizes)[0]
            port = _CHOOSER.randint(first, last)
            if port in ports:
                continue
            sock = stack.enter_context(socket.socket())
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            ports.append(port)
        # No room outside the range (or it is crowded): the kernel's choice, as a last resort.
        while len(ports) < count:
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _ephemeral_range() -> tuple[int, int]:
    """The local ports the kernel gives outgoing connections (Linux's default when unreadable)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    """Whether GET `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stat_fields(pid: int) -> list[str]:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    # The command name in parentheses may itself contain spaces and parentheses.
    return stat[stat.rfind(")") + 2 :].split()


def _reap(pid: int) -> None:
    """Collect the exit status if `pid` is our own exited child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        # Our children run in sessions of their own; signalling the group reaches what they spawned.
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)


def wait_gone(pid: int, ticks: int | None, timeout: float) -> bool:
    """Wait up to `timeout` seconds for the process to exit; True when it did."""
    deadline = time.monotonic() + timeout
    while is_alive(pid, ticks):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)
    return True
