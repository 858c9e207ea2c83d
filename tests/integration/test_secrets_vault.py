"""The `vault-transit` KEK provider (data-model.md §9.4), against a Vault Transit stand-in.

No Vault server can run on the test machines: `tests/helpers/vault_transit.py` is a small
HTTP server speaking the Transit endpoints hvac calls (encrypt, decrypt, rewrap, read key),
with real AES-GCM per key version. The provider code under test is the production one, talking
HTTP through hvac exactly as it would to Vault.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from noetl.v1 import secrets_pb2

from kernel.migrate import migrate
from services.secrets.envelope import WrappedKey
from services.secrets.kek import KekError
from services.secrets.vault import VaultSettings, VaultTransitKek
from tests.helpers.secrets import new_key, running_secrets, wallet_settings
from tests.helpers.vault_transit import TOKEN, TransitStandIn, transit_stand_in

KEY = "noetl-wallet"


@pytest.fixture(scope="module")
def vault() -> Iterator[TransitStandIn]:
    with transit_stand_in() as state:
        state.create_key(KEY)
        yield state


def provider(vault: TransitStandIn, **overrides: str | float) -> VaultTransitKek:
    values: dict[str, Any] = {
        "addr": vault.url,
        "token": TOKEN,
        "token_file": "",
        "namespace": "",
        "ca_file": "",
        "mount": "transit",
        "key": KEY,
        "version_cache_seconds": 0.0,
        **overrides,
    }
    return VaultTransitKek(VaultSettings(**values))


async def test_wrap_unwrap_and_the_envelope_fields(vault: TransitStandIn) -> None:
    kek = provider(vault)
    dek = os.urandom(32)
    wrapped = await kek.wrap(dek)
    assert wrapped.provider == "vault-transit"
    assert wrapped.kid == f"transit/{KEY}"
    assert wrapped.kv == f"v{vault.latest_version(KEY)}"
    assert wrapped.ct.startswith(f"vault:{wrapped.kv}:")  # Vault's ciphertext, verbatim
    assert await kek.unwrap(wrapped) == dek
    assert await kek.current_version() == wrapped.kv


async def test_rewrap_never_decrypts(vault: TransitStandIn) -> None:
    kek = provider(vault)
    dek = os.urandom(32)
    wrapped = await kek.wrap(dek)
    latest = vault.rotate(KEY)
    decrypts = vault.calls["decrypt"]

    rewrapped = await kek.rewrap(wrapped)

    assert vault.calls["decrypt"] == decrypts  # the DEK never left Vault
    assert rewrapped.kv == f"v{latest}" and await kek.current_version() == f"v{latest}"
    assert await kek.unwrap(rewrapped) == dek


async def test_the_current_version_is_cached(vault: TransitStandIn) -> None:
    now = [0.0]
    kek = VaultTransitKek(
        VaultSettings(vault.url, TOKEN, "", "", "", "transit", KEY, version_cache_seconds=60),
        clock=lambda: now[0],
    )
    first = await kek.current_version()
    reads = vault.calls["keys"]
    vault.rotate(KEY)
    now[0] = 59.0
    assert await kek.current_version() == first and vault.calls["keys"] == reads
    now[0] = 61.0
    assert await kek.current_version() != first


async def test_provider_errors_are_clear_and_short(vault: TransitStandIn, tmp_path: Path) -> None:
    with pytest.raises(KekError, match="permission denied"):
        await provider(vault, token="wrong").wrap(os.urandom(32))
    with pytest.raises(KekError, match="encryption key not found"):
        await provider(vault, key="nope").wrap(os.urandom(32))
    with pytest.raises(KekError) as refused:
        await provider(vault, addr="http://127.0.0.1:9").wrap(os.urandom(32))
    assert len(str(refused.value)) <= len("Vault transit encrypt failed: ") + 200
    with pytest.raises(KekError, match="does not unwrap keys of 'local'"):
        await provider(vault).unwrap(WrappedKey("local", "env:NOETL_ENCRYPTION_KEY", "v1", "AAAA"))

    token_file = tmp_path / "token"
    token_file.write_text("wrong\n")
    kek = provider(vault, token="", token_file=str(token_file))
    with pytest.raises(KekError, match="permission denied"):
        await kek.wrap(os.urandom(32))
    token_file.write_text(f"{TOKEN}\n")  # re-read on use: a renewed token works without a restart
    assert (await kek.wrap(os.urandom(32))).provider == "vault-transit"


@pytest.fixture(scope="module")
async def dsn(module_dsn: str) -> str:
    await migrate(module_dsn)
    return module_dsn


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(dsn)
    yield conn
    await conn.close()


def vault_env(vault: TransitStandIn, **extra: str) -> dict[str, str]:
    return {
        "NOETL_KMS_PROVIDER": "vault-transit",
        "VAULT_ADDR": vault.url,
        "VAULT_TOKEN": TOKEN,
        "NOETL_VAULT_TRANSIT_KEY": KEY,
        **extra,
    }


async def test_the_wallet_moves_local_rows_into_vault_and_rotates_them(
    vault: TransitStandIn, dsn: str, db: asyncpg.Connection
) -> None:
    local_key = new_key()
    async with running_secrets(wallet_settings(dsn, {"NOETL_ENCRYPTION_KEY": local_key})) as local:
        for index in range(3):
            await local.stub.PutCredential(
                secrets_pb2.PutCredentialRequest(
                    name=f"vt_{index}", data_json=json.dumps({"i": index}).encode()
                )
            )
    before = {
        r["name"]: json.loads(r["data_encrypted"]) for r in await db.fetch("SELECT * FROM noetl.credential")
    }

    # vault-transit primary, the local key kept only to unwrap rows not yet moved.
    async with running_secrets(
        wallet_settings(dsn, vault_env(vault, NOETL_ENCRYPTION_KEY=local_key))
    ) as wallet:
        assert json.loads(
            (
                await wallet.stub.GetCredential(
                    secrets_pb2.GetCredentialRequest(identifier="vt_0", include_data=True)
                )
            ).credential.data_json
        ) == {"i": 0}
        moved = await wallet.stub.Rotate(secrets_pb2.RotateRequest())
        assert (moved.credential.rewrapped, moved.credential.failed) == (3, 0)

        after = {
            r["name"]: json.loads(r["data_encrypted"])
            for r in await db.fetch("SELECT * FROM noetl.credential")
        }
        for name, doc in after.items():
            assert doc["ct"] == before[name]["ct"]
            assert doc["dek"]["p"] == "vault-transit" and doc["dek"]["kid"] == f"transit/{KEY}"
            assert doc["dek"]["ct"].startswith("vault:v")

        latest = vault.rotate(KEY)
        rewraps, decrypts = vault.calls["rewrap"], vault.calls["decrypt"]
        rotated = await wallet.stub.Rotate(secrets_pb2.RotateRequest())
        assert rotated.credential.rewrapped == 3
        assert vault.calls["rewrap"] == rewraps + 3 and vault.calls["decrypt"] == decrypts
        status = await wallet.stub.KeyStatus(secrets_pb2.KeyStatusRequest())
        assert dict(status.credential) == {f"v{latest}": 3}

        await wallet.stub.PutCredential(secrets_pb2.PutCredentialRequest(name="vt_new", data_json=b'{"n":1}'))
        fresh = await wallet.stub.GetCredential(
            secrets_pb2.GetCredentialRequest(identifier="vt_new", include_data=True)
        )
        assert json.loads(fresh.credential.data_json) == {"n": 1}

    # Without the local key a vault-only wallet reads everything now.
    async with running_secrets(wallet_settings(dsn, vault_env(vault))) as vault_only:
        for index in range(3):
            got = await vault_only.stub.GetCredential(
                secrets_pb2.GetCredentialRequest(identifier=f"vt_{index}", include_data=True)
            )
            assert json.loads(got.credential.data_json) == {"i": index}


async def test_an_unreachable_vault_is_unavailable_not_a_crash(dsn: str, vault: TransitStandIn) -> None:
    env = vault_env(vault, VAULT_ADDR="http://127.0.0.1:9")
    async with running_secrets(wallet_settings(dsn, env)) as wallet:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await wallet.stub.PutCredential(secrets_pb2.PutCredentialRequest(name="vt_down", data_json=b"{}"))
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "Vault transit encrypt failed" in (caught.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as rotate:
            await wallet.stub.Rotate(secrets_pb2.RotateRequest())
        assert rotate.value.code() is grpc.StatusCode.UNAVAILABLE
