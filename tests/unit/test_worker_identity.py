"""A worker's id is the one its mesh identity proves, and user code inherits none of its credentials."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kernel.config import ConfigError
from worker.environment import scrub
from worker.settings import Settings


@pytest.fixture
def worker_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in [n for n in os.environ if n.startswith(("NOETL_", "NATS_"))]:
        monkeypatch.delenv(name)
    token = tmp_path / "worker.token"
    token.write_text("t\n")
    monkeypatch.setenv("NOETL_NATS_URL", "nats://127.0.0.1:4222")
    monkeypatch.setenv("NOETL_MESH_TOKEN_FILE", str(token))
    return monkeypatch


def test_a_worker_identity_names_the_worker_id(worker_env: pytest.MonkeyPatch) -> None:
    worker_env.setenv("NOETL_MESH_IDENTITY", "worker:w-9")
    assert Settings.load().worker_id == "w-9"


def test_a_declared_worker_id_must_be_the_proven_one(worker_env: pytest.MonkeyPatch) -> None:
    worker_env.setenv("NOETL_MESH_IDENTITY", "worker:w-9")
    worker_env.setenv("NOETL_WORKER_ID", "w-10")
    with pytest.raises(
        ConfigError, match="NOETL_WORKER_ID='w-10' differs from the mesh identity 'worker:w-9'"
    ):
        Settings.load()


def test_a_shared_worker_identity_keeps_the_declared_id(worker_env: pytest.MonkeyPatch) -> None:
    worker_env.setenv("NOETL_WORKER_ID", "pod-abc")
    settings = Settings.load()
    assert (settings.mesh.identity, settings.worker_id) == ("worker", "pod-abc")


def test_user_code_inherits_no_credential_or_path_to_one() -> None:
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/home/noetl",
        "NOETL_WORKER_POOLS": "shared",
        "NOETL_MESH_AUTH": "token",
        "NOETL_MESH_IDENTITY": "worker:w-9",
        "NOETL_MESH_TOKEN_FILE": "/var/run/noetl/mesh-worker/token",
        "NOETL_MESH_TLS_KEY": "/var/run/noetl/tls/tls.key",
        "NOETL_PG_DSN": "postgresql://postgres@127.0.0.1/noetl",
        "NOETL_INTERNAL_API_TOKEN": "internal",
        "NOETL_SESSION_TOKEN": "session",
        "NATS_PASSWORD": "bus",
        "MY_APP_TOKEN": "the user's own",
    }
    removed = scrub(environ)
    assert environ == {
        "PATH": "/usr/bin",
        "HOME": "/home/noetl",
        "NOETL_WORKER_POOLS": "shared",
        "MY_APP_TOKEN": "the user's own",
    }
    assert removed == sorted(removed) and len(removed) == 8
