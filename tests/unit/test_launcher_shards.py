"""The launcher's layout of an N-shard mesh, without starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel import addresses
from kernel.addresses import local
from noetl_mesh.cli import build_parser
from noetl_mesh.config import Ports
from noetl_mesh.mesh import mesh_environment, mesh_processes
from noetl_mesh.stack import shard_databases
from noetl_mesh.state import StackInfo


def shard_addresses(port: int) -> str:
    """Three shards' addresses of one service: shard k on shard 0's port plus k x 100."""
    return ",".join(local(port + k * 100) for k in range(3))


def test_three_shards_start_an_execution_events_and_outbox_process_each() -> None:
    specs = mesh_processes(Ports().with_shards(3), python="py")
    assert [(s.name, s.shard) for s in specs] == [
        ("catalog", None),
        ("events-0", 0),
        ("events-1", 1),
        ("events-2", 2),
        ("execution-0", 0),
        ("execution-1", 1),
        ("execution-2", 2),
        ("outbox-0", 0),
        ("outbox-1", 1),
        ("outbox-2", 2),
        ("secrets", None),
        ("gateway", None),
        ("worker", None),
    ]
    by_name = {s.name: s for s in specs}
    # Shard k listens on shard 0's ports plus k x 100 and relays to its own outbox.
    assert by_name["execution-2"].address == local(addresses.EXECUTION_PORT + 200)
    assert by_name["events-1"].env["NOETL_SHARD_INDEX"] == "1"
    assert by_name["events-1"].env["NOETL_OUTBOX_ADDR"] == local(addresses.OUTBOX_PORT + 100)
    metrics = {s.env["NOETL_METRICS_PORT"] for s in specs}
    assert len(metrics) == len(specs)


def test_every_process_learns_every_shard_in_shard_order() -> None:
    env = mesh_environment(
        Ports().with_shards(3), pg_dsn="postgresql://x/noetl", nats_url="n", run_dir=Path("/r")
    )
    assert env["NOETL_EXECUTION_ADDRS"] == shard_addresses(addresses.EXECUTION_PORT)
    assert env["NOETL_EVENTS_ADDRS"] == shard_addresses(addresses.EVENTS_PORT)
    assert env["NOETL_OUTBOX_ADDRS"] == shard_addresses(addresses.OUTBOX_PORT)
    assert env["NOETL_SHARD_COUNT"] == env["NOETL_EVENT_SHARD_COUNT"] == "3"
    assert env["NOETL_CLUSTER_PG_DSN"] == "postgresql://x/noetl"


def test_ephemeral_shard_ports_are_all_distinct_and_survive_the_state_file(tmp_path: Path) -> None:
    ports = Ports.ephemeral().with_shards(3).resolve_processes()
    chosen = [port for k in range(3) for port in vars(ports.shard(k)).values()]
    assert all(chosen) and len(set(chosen)) == len(chosen)
    assert Ports.from_dict(ports.to_dict()) == ports


def test_each_shard_has_its_own_database_and_one_shard_uses_the_cluster_database() -> None:
    assert shard_databases("postgresql://u@h:5/noetl?x=1", 1) == ("postgresql://u@h:5/noetl?x=1",)
    assert shard_databases("postgresql://u@h:5/noetl?x=1", 2) == (
        "postgresql://u@h:5/noetl_shard_0?x=1",
        "postgresql://u@h:5/noetl_shard_1?x=1",
    )


@pytest.mark.parametrize("count", ["0", "9", "x"])
def test_the_shard_count_is_from_one_to_eight(count: str) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["up", "--shards", count])
    assert build_parser().parse_args(["up", "--shards", "8"]).shards == 8


def test_an_old_state_file_without_shards_reads_as_one_shard() -> None:
    text = (
        '{"run_dir": "/r", "started_at": 1, "ports": {"execution": 5}, '
        '"postgres": {"name": "postgres", "url": "postgresql://h/d", "embedded": true, "log": null}, '
        '"nats": {"name": "nats", "url": "nats://h", "embedded": true, "log": null}, "processes": []}'
    )
    info = StackInfo.from_json(text)
    assert info.ports.shard_count == 1 and info.execution_addrs == ("127.0.0.1:5",)
