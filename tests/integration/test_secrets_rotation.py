"""KEK rotation (data-model.md §9.6): re-wrap under a new key version while reads go on.

Three wallets share one database the way consecutive deployments would: `v1` (the old key),
`v2` (the new key, with the old one kept for unwrapping) and `v2only` (the new key alone).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
from noetl.v1 import secrets_pb2

from kernel.migrate import migrate
from services.secrets.settings import Settings
from tests.helpers.secrets import Wallet, new_key, running_secrets, wallet_settings

COUNT = 40
NAMES = [f"rot_{index:03d}" for index in range(COUNT)]


def data_of(name: str) -> dict[str, str]:
    return {"password": f"secret-of-{name}", "user": name}


@pytest.fixture(scope="module")
async def dsn(module_dsn: str) -> str:
    await migrate(module_dsn)
    return module_dsn


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return new_key(), new_key()


@pytest.fixture(scope="module")
async def v1(dsn: str, keys: tuple[str, str]) -> AsyncIterator[Wallet]:
    async with running_secrets(wallet_settings(dsn, {"NOETL_ENCRYPTION_KEY": keys[0]})) as wallet:
        yield wallet


@pytest.fixture(scope="module")
async def v2(dsn: str, keys: tuple[str, str]) -> AsyncIterator[Wallet]:
    env = {
        "NOETL_ENCRYPTION_KEY": keys[1],
        "NOETL_ENCRYPTION_KEY_VERSION": "v2",
        "NOETL_ENCRYPTION_PREVIOUS_KEYS": f"v1:{keys[0]}",
    }
    async with running_secrets(wallet_settings(dsn, env)) as wallet:
        yield wallet


@pytest.fixture(scope="module")
async def db(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(dsn)
    yield conn
    await conn.close()


@pytest.fixture(scope="module")
async def written(v1: Wallet, db: asyncpg.Connection) -> dict[str, str]:
    """COUNT credentials and two keychain entries under v1, plus one row that is not an envelope."""
    for name in NAMES:
        await v1.stub.PutCredential(
            secrets_pb2.PutCredentialRequest(
                name=name, type="generic", data_json=json.dumps(data_of(name)).encode()
            )
        )
    for scope in ("global", "shared"):
        await v1.stub.SetKeychain(
            secrets_pb2.SetKeychainRequest(
                catalog_id=7, keychain_name="rot_token", data_json=b'{"token":"t"}', credential_type="bearer",
                scope_type=scope,
            )
        )  # fmt: skip
    await db.execute(
        "INSERT INTO noetl.credential (id, name, type, data_encrypted) VALUES (1, 'rot_broken', 'generic', 'garbage')"
    )
    rows = await db.fetch("SELECT name, data_encrypted FROM noetl.credential")
    return {
        row["name"]: json.loads(row["data_encrypted"])["ct"] for row in rows if row["name"] != "rot_broken"
    }


async def read(wallet: Wallet, name: str) -> dict[str, str]:
    answer = await wallet.stub.GetCredential(
        secrets_pb2.GetCredentialRequest(identifier=name, include_data=True, accessor=secrets_pb2.Accessor())
    )
    value: dict[str, str] = json.loads(answer.credential.data_json)
    return value


async def key_status(wallet: Wallet) -> tuple[dict[str, int], dict[str, int]]:
    status = await wallet.stub.KeyStatus(secrets_pb2.KeyStatusRequest())
    return dict(status.credential), dict(status.keychain)


@pytest.fixture(scope="module")
def v2_only(dsn: str, keys: tuple[str, str]) -> Settings:
    """A wallet configured with the new key alone, as after a finished rotation."""
    return wallet_settings(dsn, {"NOETL_ENCRYPTION_KEY": keys[1], "NOETL_ENCRYPTION_KEY_VERSION": "v2"})


async def test_rotation_under_concurrent_reads(
    v1: Wallet, v2: Wallet, written: dict[str, str], db: asyncpg.Connection, v2_only: Settings
) -> None:
    assert await key_status(v2) == ({"invalid": 1, "v1": COUNT}, {"v1": 2})
    stop = asyncio.Event()
    reads = 0

    async def reader(offset: int) -> None:
        nonlocal reads
        index = offset
        while not stop.is_set():
            name = NAMES[index % COUNT]
            assert await read(v2, name) == data_of(name)
            reads += 1
            index += 3

    readers = [asyncio.create_task(reader(offset)) for offset in range(3)]
    reports: list[secrets_pb2.RotateResponse] = []
    cursor: int | None = None
    try:
        # Small batches, one at a time, resumed from the reported cursor: reads interleave.
        while True:
            request = secrets_pb2.RotateRequest(batch_size=6, max_batches=1)
            if cursor is not None:
                request.credential_after = cursor
            report = await v2.stub.Rotate(request)
            reports.append(report)
            if report.credential.processed < 6:
                break
            cursor = int(report.credential.last_id)
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.gather(*readers)
    assert reads > 0

    credential = [r.credential for r in reports]
    assert sum(c.rewrapped for c in credential) == COUNT
    assert sum(c.failed for c in credential) == 1
    assert sum(c.failures["parse_error"] for c in credential) == 1
    assert sum(c.processed for c in credential) == COUNT + 1
    assert credential[0].failures["parse_error"] == 1  # the broken row has the smallest id
    assert await key_status(v2) == ({"invalid": 1, "v2": COUNT}, {"v2": 2})

    # Only dek changed: every ciphertext is byte-identical.
    rows = await db.fetch("SELECT name, data_encrypted FROM noetl.credential WHERE name <> 'rot_broken'")
    for row in rows:
        doc = json.loads(row["data_encrypted"])
        assert doc["ct"] == written[row["name"]]
        assert doc["dek"]["kv"] == "v2"

    # The old key is no longer needed; the old wallet can no longer read.
    async with running_secrets(v2_only) as v2only:
        for name in NAMES:
            assert await read(v2only, name) == data_of(name)
        keychain = await v2only.stub.GetKeychain(
            secrets_pb2.GetKeychainRequest(catalog_id=7, keychain_name="rot_token", scope_type="global")
        )
        assert keychain.status == "success" and json.loads(keychain.entry.data_json) == {"token": "t"}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(v1, NAMES[0])
    assert "no local key of version 'v2'" in (caught.value.details() or "")


async def test_a_second_rotation_skips_everything(v2: Wallet, written: dict[str, str]) -> None:
    report = await v2.stub.Rotate(secrets_pb2.RotateRequest())
    assert (report.credential.rewrapped, report.credential.skipped, report.credential.failed) == (0, COUNT, 1)
    assert (report.keychain.processed, report.keychain.skipped) == (2, 2)
    assert report.keychain.last_id == "rot_token:7:shared"


async def test_rows_written_during_rotation_use_the_current_key(v2: Wallet, db: asyncpg.Connection) -> None:
    await v2.stub.PutCredential(secrets_pb2.PutCredentialRequest(name="rot_new", data_json=b'{"a":1}'))
    stored = await db.fetchval("SELECT data_encrypted FROM noetl.credential WHERE name = 'rot_new'")
    assert json.loads(stored)["dek"]["kv"] == "v2"
