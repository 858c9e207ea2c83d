"""The secrets wallet over gRPC on real Postgres: credentials, sealing at rest, failures, audit.

(data-model.md §3.10, §3.12, §9.2, §9.3, §9.7; http-api.md §9.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import pytest
from noetl.v1 import secrets_pb2

from kernel.migrate import migrate
from tests.helpers.secrets import Wallet, new_key, running_secrets, wallet_settings

PASSWORD = "pg-Pa55word-that-must-never-leak"
DATA = {"db_host": "db.internal", "db_user": "svc", "db_password": PASSWORD, "nested": {"token": "tk-123456"}}


@pytest.fixture(scope="module")
async def dsn(module_dsn: str) -> str:
    await migrate(module_dsn)
    return module_dsn


@pytest.fixture(scope="module")
def key() -> str:
    return new_key()


@pytest.fixture(scope="module")
async def wallet(dsn: str, key: str) -> AsyncIterator[Wallet]:
    async with running_secrets(wallet_settings(dsn, {"NOETL_ENCRYPTION_KEY": key})) as running:
        yield running


@pytest.fixture(scope="module")
async def db(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(dsn)
    yield conn
    await conn.close()


def put_request(name: str, data: Any = None, **extra: Any) -> secrets_pb2.PutCredentialRequest:
    request = secrets_pb2.PutCredentialRequest(
        name=name, type=extra.pop("type", "postgres"), data_json=json.dumps(data or DATA).encode(), **extra
    )
    return request


def get_request(
    identifier: str, include_data: bool = True, **accessor: Any
) -> secrets_pb2.GetCredentialRequest:
    return secrets_pb2.GetCredentialRequest(
        identifier=identifier, include_data=include_data, accessor=secrets_pb2.Accessor(**accessor)
    )


async def audit_rows(db: asyncpg.Connection, credential: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT * FROM noetl.secret_audit WHERE credential = $1 ORDER BY audit_id", credential
    )


async def test_round_trip(wallet: Wallet) -> None:
    put = await wallet.stub.PutCredential(put_request("rt_pg", tags=secrets_pb2.StringList(values=["dev"])))
    created = put.credential
    assert created.id > 0 and created.name == "rt_pg" and created.type == "postgres"
    assert created.data_json == b""  # the write answers without data
    assert list(created.tags.values) == ["dev"]

    by_name = (await wallet.stub.GetCredential(get_request("rt_pg"))).credential
    by_id = (await wallet.stub.GetCredential(get_request(str(created.id)))).credential
    assert json.loads(by_name.data_json) == DATA
    assert json.loads(by_id.data_json) == DATA
    assert by_id.id == created.id


async def test_upsert_by_name_keeps_the_id_and_replaces_the_data(wallet: Wallet) -> None:
    first = (await wallet.stub.PutCredential(put_request("upsert_pg", {"v": 1}))).credential
    second = (
        await wallet.stub.PutCredential(
            put_request("  upsert_pg  ", {"v": 2}, type="generic", description="d")
        )
    ).credential
    assert second.id == first.id
    assert second.type == "generic" and second.description == "d"
    assert second.created_at == first.created_at
    assert second.updated_at.ToDatetime() >= first.updated_at.ToDatetime()
    assert json.loads((await wallet.stub.GetCredential(get_request("upsert_pg"))).credential.data_json) == {
        "v": 2
    }


async def test_no_plaintext_at_rest(wallet: Wallet, db: asyncpg.Connection) -> None:
    await wallet.stub.PutCredential(put_request("scan_pg"))
    await wallet.stub.SetKeychain(
        secrets_pb2.SetKeychainRequest(
            catalog_id=42, keychain_name="scan_token", data_json=json.dumps({"access_token": PASSWORD}).encode(),
            credential_type="bearer",
        )
    )  # fmt: skip
    for table in ("credential", "keychain", "secret_audit"):
        rows = await db.fetch(f"SELECT t::text AS whole FROM noetl.{table} t")
        assert rows, table
        for row in rows:
            assert PASSWORD not in row["whole"], f"plaintext in noetl.{table}"
            assert "tk-123456" not in row["whole"]
    stored = await db.fetchval("SELECT data_encrypted FROM noetl.credential WHERE name = 'scan_pg'")
    doc = json.loads(stored)
    assert doc["v"] == 1 and doc["alg"] == "AES-256-GCM" and doc["dek"]["kv"] == "v1"


async def test_list_and_get_without_include_data_never_carry_data(wallet: Wallet) -> None:
    await wallet.stub.PutCredential(put_request("nodata_pg", description="Primary DB"))
    listed = await wallet.stub.ListCredentials(secrets_pb2.ListCredentialsRequest())
    assert listed.credentials
    for item in listed.credentials:
        assert item.data_json == b""
        assert PASSWORD.encode() not in item.SerializeToString()
    plain = await wallet.stub.GetCredential(get_request("nodata_pg", include_data=False))
    assert plain.credential.data_json == b""
    assert PASSWORD.encode() not in plain.SerializeToString()

    by_type = await wallet.stub.ListCredentials(secrets_pb2.ListCredentialsRequest(type="postgres"))
    assert all(c.type == "postgres" for c in by_type.credentials)
    by_q = await wallet.stub.ListCredentials(secrets_pb2.ListCredentialsRequest(q="primary db"))
    assert [c.name for c in by_q.credentials] == ["nodata_pg"]


async def test_get_without_data_is_not_audited_and_with_data_is(
    wallet: Wallet, db: asyncpg.Connection
) -> None:
    await wallet.stub.PutCredential(put_request("audited_pg"))
    await wallet.stub.GetCredential(get_request("audited_pg", include_data=False))
    assert await audit_rows(db, "audited_pg") == []

    await wallet.stub.GetCredential(get_request("audited_pg", caller="http", execution_id=77, catalog_id=5))
    await wallet.stub.GetCredential(get_request("audited_pg", worker_id="worker-1", execution_id=78))
    rows = await audit_rows(db, "audited_pg")
    assert [(r["operation"], r["outcome"], r["kek_version"]) for r in rows] == [
        ("get_credential", "ok", "v1")
    ] * 2
    assert (rows[0]["worker_id"], rows[0]["execution_id"]) == (None, 77)
    assert rows[0]["notes"] == "caller=http catalog_id=5"
    assert (rows[1]["worker_id"], rows[1]["execution_id"]) == ("worker-1", 78)
    for row in rows:
        assert PASSWORD not in str(dict(row))


async def test_unknown_credentials(wallet: Wallet, db: asyncpg.Connection) -> None:
    for include_data in (False, True):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await wallet.stub.GetCredential(get_request("missing_pg", include_data=include_data))
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
        assert caught.value.details() == "Credential not found"
    assert [r["outcome"] for r in await audit_rows(db, "missing_pg")] == ["credential_not_found"]
    with pytest.raises(grpc.aio.AioRpcError) as deleted:
        await wallet.stub.DeleteCredential(secrets_pb2.DeleteCredentialRequest(identifier="missing_pg"))
    assert deleted.value.code() is grpc.StatusCode.NOT_FOUND


async def test_delete(wallet: Wallet) -> None:
    created = (await wallet.stub.PutCredential(put_request("gone_pg"))).credential
    deleted = await wallet.stub.DeleteCredential(
        secrets_pb2.DeleteCredentialRequest(identifier=str(created.id))
    )
    assert (deleted.id, deleted.name) == (created.id, "gone_pg")
    with pytest.raises(grpc.aio.AioRpcError):
        await wallet.stub.GetCredential(get_request("gone_pg"))


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        (put_request("   "), "name must not be empty"),
        (secrets_pb2.PutCredentialRequest(name="x", data_json=b"[1]"), "data must be an object"),
    ],
)
async def test_invalid_credentials(
    wallet: Wallet, request_: secrets_pb2.PutCredentialRequest, problem: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await wallet.stub.PutCredential(request_)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert problem in (caught.value.details() or "")


async def test_a_wrong_key_names_the_credential(dsn: str, wallet: Wallet, db: asyncpg.Connection) -> None:
    await wallet.stub.PutCredential(put_request("wrongkey_pg"))
    async with running_secrets(wallet_settings(dsn, {"NOETL_ENCRYPTION_KEY": new_key()})) as other:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await other.stub.GetCredential(get_request("wrongkey_pg"))
        # Metadata still reads: only the data is sealed.
        plain = await other.stub.GetCredential(get_request("wrongkey_pg", include_data=False))
    assert plain.credential.name == "wrongkey_pg"
    assert caught.value.code() is grpc.StatusCode.INTERNAL
    details = caught.value.details() or ""
    assert "Cannot decrypt credential 'wrongkey_pg'" in details and "cannot unwrap" in details
    assert PASSWORD not in details
    assert [(r["outcome"], r["kek_version"]) for r in await audit_rows(db, "wrongkey_pg")] == [
        ("decrypt_error", "v1")
    ]


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        (
            "tampered_pg",
            # One ciphertext character changed: to 'B', or to 'C' where it already is a 'B'.
            "overlay(data_encrypted placing"
            " CASE substr(data_encrypted, strpos(data_encrypted, '\"ct\":\"') + 10, 1) WHEN 'B' THEN 'C' ELSE 'B' END"
            ' from strpos(data_encrypted, \'"ct":"\') + 10 for 1)',
        ),
        ("truncated_pg", "left(data_encrypted, length(data_encrypted) / 2)"),
        ("garbage_pg", "'not an envelope'"),
    ],
)
async def test_damaged_rows_are_clear_errors(
    wallet: Wallet, db: asyncpg.Connection, name: str, damage: str
) -> None:
    await wallet.stub.PutCredential(put_request(name))
    before = await db.fetchval("SELECT data_encrypted FROM noetl.credential WHERE name = $1", name)
    await db.execute(f"UPDATE noetl.credential SET data_encrypted = {damage} WHERE name = $1", name)
    assert await db.fetchval("SELECT data_encrypted FROM noetl.credential WHERE name = $1", name) != before

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await wallet.stub.GetCredential(get_request(name))
    assert caught.value.code() is grpc.StatusCode.INTERNAL
    assert f"Cannot decrypt credential '{name}'" in (caught.value.details() or "")
    assert [r["outcome"] for r in await audit_rows(db, name)] == ["decrypt_error"]


async def test_strict_audit_fails_the_read_when_the_audit_cannot_be_written(
    dsn: str, key: str, wallet: Wallet, db: asyncpg.Connection
) -> None:
    await wallet.stub.PutCredential(put_request("strict_pg"))
    strict_env = {"NOETL_ENCRYPTION_KEY": key, "NOETL_SECRET_AUDIT_REQUIRED": "true"}
    async with running_secrets(wallet_settings(dsn, strict_env)) as strict:
        await db.execute("ALTER TABLE noetl.secret_audit RENAME TO secret_audit_offline")
        try:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await strict.stub.GetCredential(get_request("strict_pg"))
            # Best effort (the default) still answers.
            relaxed = await wallet.stub.GetCredential(get_request("strict_pg"))
        finally:
            await db.execute("ALTER TABLE noetl.secret_audit_offline RENAME TO secret_audit")
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "NOETL_SECRET_AUDIT_REQUIRED" in (caught.value.details() or "")
        assert PASSWORD not in (caught.value.details() or "")
        assert json.loads(relaxed.credential.data_json) == DATA
        # With the table back, the strict wallet reads and audits.
        await strict.stub.GetCredential(get_request("strict_pg"))
    assert [r["outcome"] for r in await audit_rows(db, "strict_pg")] == ["ok"]


async def test_audit_query(wallet: Wallet) -> None:
    await wallet.stub.PutCredential(put_request("query_pg"))
    for execution_id in (501, 502, 502):
        await wallet.stub.GetCredential(get_request("query_pg", execution_id=execution_id))
    rows = (await wallet.stub.ListAudit(secrets_pb2.ListAuditRequest(credential="query_pg"))).rows
    assert [r.execution_id for r in rows] == [502, 502, 501]  # newest first
    only = (
        await wallet.stub.ListAudit(secrets_pb2.ListAuditRequest(credential="query_pg", execution_id=501))
    ).rows
    assert len(only) == 1 and only[0].operation == "get_credential" and only[0].outcome == "ok"
    limited = (await wallet.stub.ListAudit(secrets_pb2.ListAuditRequest(credential="query_pg", limit=1))).rows
    assert len(limited) == 1
    later = secrets_pb2.ListAuditRequest(credential="query_pg")
    later.from_time.FromJsonString("2999-01-01T00:00:00Z")
    assert not (await wallet.stub.ListAudit(later)).rows
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await wallet.stub.ListAudit(secrets_pb2.ListAuditRequest(limit=10001))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_the_insecure_escape_hatch_works_and_warns(dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    settings = wallet_settings(dsn, {"NOETL_ALLOW_INSECURE_DEFAULT_KEY": "true"})
    with caplog.at_level(logging.WARNING, logger="services.secrets"):
        async with running_secrets(settings) as throwaway:
            await throwaway.stub.PutCredential(put_request("insecure_pg"))
            got = await throwaway.stub.GetCredential(get_request("insecure_pg"))
    assert json.loads(got.credential.data_json) == DATA
    assert any("INSECURE" in record.getMessage() for record in caplog.records)
    # Another process gets another key: what it sealed is unreadable after a restart.
    async with running_secrets(settings) as restarted:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await restarted.stub.GetCredential(get_request("insecure_pg"))
    assert caught.value.code() is grpc.StatusCode.INTERNAL
