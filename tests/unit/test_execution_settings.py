"""Shard ownership settings of the execution service (data-model.md §10.3)."""

from __future__ import annotations

import pytest

from kernel.config import ConfigError
from services.execution.settings import Settings, hostname_ordinal

BASE = {
    "NOETL_PG_DSN": "postgresql://x@127.0.0.1/noetl",
    "NOETL_NATS_URL": "nats://127.0.0.1:4222",
    "NOETL_MESH_AUTH": "off",
}
THREE_SHARDS = {
    "NOETL_SHARD_COUNT": "3",
    "NOETL_EVENT_SHARD_COUNT": "3",
    "NOETL_EXECUTION_ADDRS": "e-0:50052,e-1:50052,e-2:50052",
}


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for key in (
        "NOETL_SHARD_COUNT",
        "NOETL_SHARD_INDEX",
        "NOETL_SHARD_INDEX_FROM_HOSTNAME",
        "HOSTNAME",
        "NOETL_EVENT_SHARD_COUNT",
        "NOETL_EXECUTION_ADDRS",
        "NOETL_CLUSTER_PG_DSN",
    ):
        monkeypatch.delenv(key, raising=False)
    for key, value in {**BASE, **env}.items():
        monkeypatch.setenv(key, value)
    return Settings.load()


def test_defaults_own_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch)
    assert (settings.shard_index, settings.shard_count) == (0, 1)
    # One database serves the shard and the cluster unless a cluster DSN is named.
    assert settings.cluster_pg_dsn == settings.basics.pg_dsn


def test_a_shard_of_several_needs_every_peer_and_the_same_event_shard_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError) as refused:
        load(monkeypatch, NOETL_SHARD_COUNT="3", NOETL_EXECUTION_ADDRS="e-0:1")
    assert "NOETL_EXECUTION_ADDRS must name all 3 execution shards" in str(refused.value)
    assert "NOETL_EVENT_SHARD_COUNT (1) must equal NOETL_SHARD_COUNT (3)" in str(refused.value)


def test_index_from_statefulset_hostname(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(
        monkeypatch,
        **THREE_SHARDS,
        NOETL_SHARD_INDEX_FROM_HOSTNAME="true",
        HOSTNAME="noetl-execution-2",
    )
    assert settings.shard_index == 2


def test_explicit_index_wins_over_hostname(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(
        monkeypatch,
        **THREE_SHARDS,
        NOETL_SHARD_INDEX="1",
        NOETL_SHARD_INDEX_FROM_HOSTNAME="true",
        HOSTNAME="noetl-execution-2",
    )
    assert settings.shard_index == 1


@pytest.mark.parametrize(
    "env",
    [
        {"NOETL_SHARD_COUNT": "2", "NOETL_SHARD_INDEX": "2"},
        {"NOETL_SHARD_COUNT": "0"},
        {
            "NOETL_SHARD_COUNT": "2",
            "NOETL_SHARD_INDEX_FROM_HOSTNAME": "true",
            "HOSTNAME": "noetl-execution-5",
        },
    ],
)
def test_impossible_ownership_refuses_to_start(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        load(monkeypatch, **env)


def test_every_problem_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOETL_PG_DSN", raising=False)
    monkeypatch.setenv("NOETL_NATS_URL", "nats://127.0.0.1:4222")
    monkeypatch.setenv("NOETL_SHARD_COUNT", "zero")
    monkeypatch.setenv("NOETL_COMMAND_CLAIM_LEASE_SECONDS", "-1")
    with pytest.raises(ConfigError) as caught:
        Settings.load()
    message = str(caught.value)
    assert "NOETL_PG_DSN" in message and "NOETL_SHARD_COUNT" in message and "LEASE" in message


def test_hostname_ordinal() -> None:
    assert hostname_ordinal("noetl-execution-12") == 12
    assert hostname_ordinal("execution") is None
