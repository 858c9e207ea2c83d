"""The local stack's key-encryption key: made once, private, stable, only for the wallet."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from noetl_mesh.errors import StartError
from noetl_mesh.kek import KEK_FILE, ensure_key, kek_environment


def test_the_key_is_made_once_with_private_permissions(tmp_path: Path) -> None:
    first = kek_environment(tmp_path, {})["NOETL_ENCRYPTION_KEY"]
    assert len(base64.b64decode(first, validate=True)) == 32
    path = tmp_path / KEK_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # A later `up` of the same run dir gets the same key, so stored secrets stay readable.
    assert kek_environment(tmp_path, {})["NOETL_ENCRYPTION_KEY"] == first
    assert kek_environment(tmp_path / "other", {})["NOETL_ENCRYPTION_KEY"] != first


@pytest.mark.parametrize("caller", [{"NOETL_ENCRYPTION_KEY": "x"}, {"NOETL_KMS_PROVIDER": "vault-transit"}])
def test_keys_the_caller_configured_win(tmp_path: Path, caller: dict[str, str]) -> None:
    assert kek_environment(tmp_path, caller) == {}
    assert not (tmp_path / KEK_FILE).exists()


def test_a_damaged_key_file_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / KEK_FILE
    path.parent.mkdir(parents=True)
    path.write_text("not a key\n")
    with pytest.raises(StartError, match="must hold base64 of 32 bytes"):
        ensure_key(path)
