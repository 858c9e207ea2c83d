"""Mesh auth is on unless turned off, and a process missing its credentials refuses to start."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.config import ConfigError, EnvReader
from kernel.mesh_auth import OFF, TOKEN, MeshAuth
from services.execution.settings import Settings as ExecutionSettings

BASE = {"NOETL_PG_DSN": "postgresql://x@127.0.0.1/noetl", "NOETL_NATS_URL": "nats://127.0.0.1:4222"}


def read(env: dict[str, str], *, serves: bool = True, calls: bool = True) -> MeshAuth:
    reader = EnvReader(env)
    settings = MeshAuth.read(reader, "catalog", serves=serves, calls=calls)
    reader.finish()
    return settings


def test_token_mode_is_the_default_and_needs_both_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        read({})
    assert "NOETL_MESH_TOKEN_FILE is required with NOETL_MESH_AUTH=token" in str(caught.value)
    assert "NOETL_MESH_TOKENS_FILE is required with NOETL_MESH_AUTH=token" in str(caught.value)
    token, tokens = tmp_path / "token", tmp_path / "tokens"
    token.write_text("t\n")
    tokens.write_text("")
    settings = read({"NOETL_MESH_TOKEN_FILE": str(token), "NOETL_MESH_TOKENS_FILE": str(tokens)})
    assert (settings.mode, settings.identity) == (TOKEN, "catalog")


def test_a_client_only_process_needs_no_tokens_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t\n")
    assert read({"NOETL_MESH_TOKEN_FILE": str(tmp_path / "token")}, serves=False).mode == TOKEN


def test_mtls_needs_its_three_files_and_off_needs_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        read({"NOETL_MESH_AUTH": "mtls", "NOETL_MESH_TLS_CERT": str(tmp_path / "missing.crt")})
    message = str(caught.value)
    assert "missing.crt is not a readable file" in message
    assert "NOETL_MESH_TLS_KEY is required with NOETL_MESH_AUTH=mtls" in message
    assert "NOETL_MESH_TLS_CA is required" in message
    assert read({"NOETL_MESH_AUTH": "OFF"}).mode == OFF


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="NOETL_MESH_AUTH must be one of token, mtls, off, got 'plain'"):
        read({"NOETL_MESH_AUTH": "plain"})


def test_a_service_without_credentials_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in BASE.items():
        monkeypatch.setenv(key, value)
    for key in ("NOETL_MESH_AUTH", "NOETL_MESH_TOKEN_FILE", "NOETL_MESH_TOKENS_FILE"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ConfigError, match="service-to-service authentication is on by default"):
        ExecutionSettings.load()
