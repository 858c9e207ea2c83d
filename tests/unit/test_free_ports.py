"""`procs.free_ports`: the ports the stack gives its processes stay out of the kernel's way.

A mesh's ports are chosen when `up` starts and bound seconds later, and again on every restart.
CI once lost a three-shard mesh because an outgoing connection took a chosen port in between
("outbox-1 exited with code 1": `OSError: [Errno 98] Address already in use`).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from noetl_mesh import procs


def _ephemeral() -> tuple[int, int]:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as file:
        low, high = file.read().split()
    return int(low), int(high)


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0), backlog=512) as server:
        yield int(server.getsockname()[1])


def test_chosen_ports_are_distinct_bindable_and_outside_the_ephemeral_range() -> None:
    low, high = _ephemeral()
    ports = procs.free_ports(40)
    assert len(set(ports)) == 40
    assert all(not low <= port <= high for port in ports), (low, high, ports)
    with ExitStack() as stack:
        for port in ports:
            stack.enter_context(socket.create_server(("127.0.0.1", port)))


def test_outgoing_connections_take_ports_only_inside_the_range(listener: int) -> None:
    """Why the range matters: the kernel numbers outgoing connections from it, so a port chosen
    there can be gone before its process binds it; one chosen outside it cannot."""
    low, high = _ephemeral()
    chosen = set(procs.free_ports(40))
    with ExitStack() as stack:
        local = {
            stack.enter_context(socket.create_connection(("127.0.0.1", listener))).getsockname()[1]
            for _ in range(300)
        }
    assert all(low <= port <= high for port in local)
    assert not local & chosen


def test_without_room_outside_the_range_the_kernel_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    # A host whose ephemeral range covers every port above the first one picked (a sysctl away).
    monkeypatch.setattr(procs, "_ephemeral_range", lambda: (1024, 65535))
    ports = procs.free_ports(5)
    assert len(set(ports)) == 5
    low, high = _ephemeral()
    assert all(low <= port <= high for port in ports)
