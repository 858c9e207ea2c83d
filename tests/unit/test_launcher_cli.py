"""The launcher's command line and process layout, without starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_http.settings import GatewaySettings
from kernel import addresses
from noetl_mesh.cli import EXIT_DOWN, build_parser, main
from noetl_mesh.config import Ports, StackConfig
from noetl_mesh.mesh import mesh_environment, mesh_processes
from noetl_mesh.probes import GrpcHealth, HttpHealth, LogLine
from worker.consumer import READY_MARKER


def test_status_of_a_stack_never_started_is_down(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(tmp_path), "status"]) == EXIT_DOWN
    assert "down" in capsys.readouterr().out


def test_run_arguments_reach_run_playbook_as_given() -> None:
    args = build_parser().parse_args(
        ["run", "flow.yaml", "--payload", '{"a": 1}', "--set", "b=2", "--set", "c=x=y"]
    )
    assert args.file == Path("flow.yaml")
    assert args.payload == '{"a": 1}'
    assert args.set == ["b=2", "c=x=y"]
    assert build_parser().parse_args(["run", "flow.yaml"]).set == []


def test_home_comes_from_the_environment_when_not_given(tmp_path: Path) -> None:
    config = StackConfig.from_env({"NOETL_MESH_HOME": str(tmp_path), "NOETL_PG_DSN": ""})
    assert config.run_dir == tmp_path.resolve()
    assert config.pg_dsn is None


def test_mesh_processes_start_in_dependency_order_on_the_default_ports() -> None:
    specs = mesh_processes(Ports(), python="py")
    assert [s.name for s in specs] == [
        "catalog",
        "events",
        "execution",
        "outbox",
        "secrets",
        "gateway",
        "worker",
    ]
    assert specs[0].argv == ("py", "-m", "services.catalog")
    assert specs[0].readiness == GrpcHealth(addresses.CATALOG)
    assert specs[0].env == {"NOETL_GRPC_LISTEN": addresses.CATALOG, "NOETL_METRICS_PORT": "9101"}
    assert specs[4].readiness == GrpcHealth(addresses.SECRETS)
    assert [s.name for s in specs if s.holds_kek] == ["secrets"]
    assert specs[5].readiness == HttpHealth(f"http://{addresses.HOST}:{addresses.GATEWAY_PORT}/health")
    # The worker is ready when its consumers exist, which it logs with this exact marker.
    assert specs[6].readiness == LogLine(READY_MARKER)
    metrics = {s.env["NOETL_METRICS_PORT"] for s in specs}
    assert len(metrics) == len(specs)


def test_resolving_ports_fills_only_the_unset_process_ports() -> None:
    ports = Ports.ephemeral().resolve_processes()
    assert (ports.postgres, ports.nats, ports.nats_monitor) == (0, 0, 0)
    chosen = [ports.catalog, ports.execution, ports.events, ports.outbox, ports.gateway, ports.worker_metrics]
    assert all(chosen) and len(set(chosen)) == len(chosen)
    assert Ports().resolve_processes() == Ports()


def test_mesh_environment_names_every_address() -> None:
    env = mesh_environment(Ports(), pg_dsn="postgresql://x", nats_url="nats://y", run_dir=Path("/r"))
    assert env["NOETL_EXECUTION_ADDRS"] == addresses.EXECUTION
    assert env["NOETL_EVENTS_ADDRS"] == addresses.EVENTS
    assert env["NOETL_OUTBOX_ADDRS"] == addresses.OUTBOX
    assert env["NOETL_SHARD_COUNT"] == env["NOETL_EVENT_SHARD_COUNT"] == "1"
    assert env["NOETL_SECRETS_ADDR"] == addresses.SECRETS
    assert "NOETL_ENCRYPTION_KEY" not in env  # only the secrets process gets the key
    assert env["NOETL_PORT"] == str(addresses.GATEWAY_PORT)
    assert env["NOETL_PUBLIC_SERVER_URL"] == f"http://{addresses.HOST}:{addresses.GATEWAY_PORT}"


def test_the_gateway_without_address_variables_reaches_the_launchers_default_mesh() -> None:
    env = mesh_environment(Ports(), pg_dsn="postgresql://x", nats_url="nats://y", run_dir=Path("/r"))
    gateway = GatewaySettings.load({"NOETL_MESH_AUTH": "off"})
    assert gateway.catalog_addr == env["NOETL_CATALOG_ADDR"]
    assert ",".join(gateway.execution_addrs) == env["NOETL_EXECUTION_ADDRS"]
    assert ",".join(gateway.events_addrs) == env["NOETL_EVENTS_ADDRS"]
    assert ",".join(gateway.outbox_addrs) == env["NOETL_OUTBOX_ADDRS"]
    assert gateway.secrets_addr == env["NOETL_SECRETS_ADDR"]
    assert str(gateway.port) == env["NOETL_PORT"]
