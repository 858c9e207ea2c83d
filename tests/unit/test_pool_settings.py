"""Settings of the worker-pool registry: claim staleness (data-model.md §6.2), the gateway's
heartbeat defaults (http-api.md §7.3) and the worker's heartbeat period (dsl.md §16)."""

from __future__ import annotations

import pytest

from gateway_http.settings import GatewaySettings
from kernel.config import ConfigError
from services.execution.settings import Settings as ExecutionSettings
from worker.settings import Settings as WorkerSettings

BASE = {
    "NOETL_PG_DSN": "postgresql://x@127.0.0.1/noetl",
    "NOETL_NATS_URL": "nats://127.0.0.1:4222",
    "NOETL_MESH_AUTH": "off",
}
VARIABLES = (
    "NOETL_COMMAND_WORKER_HEARTBEAT_STALE_SECONDS",
    "NOETL_WORKER_POOL_HEARTBEAT_SECONDS",
    "NOETL_SHARD_COUNT",
    "NOETL_SHARD_INDEX",
)


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in VARIABLES:
        monkeypatch.delenv(key, raising=False)
    for key, value in BASE.items():
        monkeypatch.setenv(key, value)


def test_claims_count_a_pool_heartbeat_stale_after_30_seconds_by_default() -> None:
    assert ExecutionSettings.load().worker_heartbeat_stale_seconds == 30


def test_staleness_below_5_seconds_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOETL_COMMAND_WORKER_HEARTBEAT_STALE_SECONDS", "4")
    with pytest.raises(ConfigError, match="NOETL_COMMAND_WORKER_HEARTBEAT_STALE_SECONDS must be in 5"):
        ExecutionSettings.load()


def test_the_gateway_has_no_pool_name_and_recreates_pools_by_default() -> None:
    settings = GatewaySettings.load(
        {
            "NOETL_MESH_AUTH": "off",
        }
    )
    assert (settings.worker_pool_name, settings.worker_pool_auto_recreate) == ("", True)
    configured = GatewaySettings.load(
        {
            "NOETL_MESH_AUTH": "off",
            "NOETL_WORKER_POOL_NAME": " worker-py-0 ",
            "NOETL_WORKER_POOL_AUTO_RECREATE": "false",
        }
    )
    assert (configured.worker_pool_name, configured.worker_pool_auto_recreate) == ("worker-py-0", False)


def test_a_malformed_auto_recreate_flag_refuses_to_start() -> None:
    with pytest.raises(ConfigError, match="NOETL_WORKER_POOL_AUTO_RECREATE must be true or false"):
        GatewaySettings.load({"NOETL_MESH_AUTH": "off", "NOETL_WORKER_POOL_AUTO_RECREATE": "sometimes"})


def test_workers_heartbeat_their_pool_every_15_seconds_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert WorkerSettings.load().pool_heartbeat_seconds == 15.0
    monkeypatch.setenv("NOETL_WORKER_POOL_HEARTBEAT_SECONDS", "0")
    with pytest.raises(ConfigError, match=r"NOETL_WORKER_POOL_HEARTBEAT_SECONDS must be >= 0\.1"):
        WorkerSettings.load()
