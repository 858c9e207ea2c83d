"""The wallet fails closed without a usable key-encryption key (data-model.md §9.3)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernel.config import ConfigError
from services.secrets.__main__ import build_keyring
from services.secrets.kek import LocalKek
from services.secrets.settings import Settings
from services.secrets.vault import VaultTransitKek

REPO = Path(__file__).resolve().parents[2]
DSN = {"NOETL_PG_DSN": "postgresql://nobody@127.0.0.1:9/none", "NOETL_MESH_AUTH": "off"}


def key(size: int = 32) -> str:
    return base64.b64encode(os.urandom(size)).decode()


def load(**env: str) -> Settings:
    return Settings.load({**DSN, **env})


def test_without_a_key_the_settings_say_what_to_set() -> None:
    with pytest.raises(ConfigError) as caught:
        load()
    message = str(caught.value)
    assert "NOETL_ENCRYPTION_KEY is required" in message
    assert "NOETL_ALLOW_INSECURE_DEFAULT_KEY=true" in message


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("not base64 !", "not base64"),
        (key(16), "got 16 bytes"),
        (key(33), "got 33 bytes"),
        ("   ", "is required"),
    ],
)
def test_a_bad_key_refuses_to_start(value: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load(NOETL_ENCRYPTION_KEY=value)


def test_a_bad_key_is_refused_even_with_the_escape_hatch() -> None:
    with pytest.raises(ConfigError, match="not base64"):
        load(NOETL_ENCRYPTION_KEY="nope!", NOETL_ALLOW_INSECURE_DEFAULT_KEY="true")


@pytest.mark.parametrize("flag", ["true", "1", "yes", "on"])
def test_the_escape_hatch_makes_a_random_key(flag: str) -> None:
    settings = load(NOETL_ALLOW_INSECURE_DEFAULT_KEY=flag)
    assert settings.kek.insecure_random_key
    first, second = build_keyring(settings.kek), build_keyring(settings.kek)
    assert isinstance(first.primary, LocalKek) and isinstance(second.primary, LocalKek)
    assert first.primary._keys != second.primary._keys  # per process, never a fixed default


def test_versioned_local_keys() -> None:
    current, old = key(), key()
    settings = load(
        NOETL_ENCRYPTION_KEY=current,
        NOETL_ENCRYPTION_KEY_VERSION="v3",
        NOETL_ENCRYPTION_PREVIOUS_KEYS=f"v1:{old}, v2:{key()}",
    )
    assert settings.kek.local_version == "v3"
    assert sorted(settings.kek.local_keys) == ["v1", "v2", "v3"]
    assert settings.kek.local_keys["v1"] == base64.b64decode(old)


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"NOETL_ENCRYPTION_KEY_VERSION": "2"}, "must look like v1"),
        ({"NOETL_ENCRYPTION_PREVIOUS_KEYS": "v1=abc"}, "v<N>:<base64 key>"),
        ({"NOETL_ENCRYPTION_PREVIOUS_KEYS": f"v1:{key()}"}, "given twice"),
        ({"NOETL_ENCRYPTION_PREVIOUS_KEYS": "v0:abc"}, "v<N>:<base64 key>"),
        ({"NOETL_KMS_PROVIDER": "gcp-kms"}, "NOETL_KMS_PROVIDER must be"),
        ({"NOETL_KMS_PROVIDER": "vault-transit"}, "NOETL_VAULT_TRANSIT_KEY is required"),
        ({"NOETL_KMS_PROVIDER": "vault-transit", "NOETL_VAULT_TRANSIT_KEY": "k"}, "VAULT_TOKEN"),
    ],
)
def test_invalid_key_settings(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load(NOETL_ENCRYPTION_KEY=key(), **env)


def test_vault_transit_needs_no_local_key_and_keeps_one_for_unwrapping() -> None:
    vault = {"NOETL_KMS_PROVIDER": "vault-transit", "NOETL_VAULT_TRANSIT_KEY": "noetl", "VAULT_TOKEN": "t"}
    without_local = build_keyring(load(**vault).kek)
    assert isinstance(without_local.primary, VaultTransitKek)
    assert without_local.primary.kid == "transit/noetl"

    settings = load(**vault, NOETL_ENCRYPTION_KEY=key())
    assert isinstance(build_keyring(settings.kek).primary, VaultTransitKek)
    assert "v1" in settings.kek.local_keys


def test_the_service_refuses_to_start_without_a_key() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOETL_", "VAULT_"))}
    env.update(DSN, PYTHONPATH=f"{REPO}:{REPO / 'gen'}")
    result = subprocess.run(
        [sys.executable, "-m", "services.secrets"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "NOETL_ENCRYPTION_KEY is required" in result.stderr
