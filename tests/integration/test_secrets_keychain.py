"""Keychain entries and alias resolution through an execution's playbook (data-model.md §9.8).

The wallet reaches the execution's root event and its playbook through the events and catalog
services' gRPC APIs (the in-process mesh), never their tables. Aliases are resolved here the way
the gateway asks (`GetCredential` with data and an execution id); a worker's `Resolve` goes the
same way once its claim allows it (tests/integration/test_secret_binding.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import pytest
from noetl.v1 import catalog_pb2, execution_pb2, secrets_pb2

from services.secrets.store import SecretsStore
from tests.helpers.secrets import Wallet, new_key, running_secrets, wallet_settings
from tests.helpers.services import Mesh

PLAYBOOK = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: keychain_alias
  path: secrets/keychain_alias
workload:
  pg_cred: kc_pg
keychain:
  - name: pg_db
    kind: postgres
    scope: local
    credential: "{{ workload.pg_cred }}"
  - name: gcp_token
    kind: bearer
    provider: gcp
  - name: broken
    credential: "{{ workload.pg_cred.nope( }}"
  - name: dangling
    credential: no_such_credential
workflow:
  - step: start
    tool:
      kind: python
      code: |
        result = {}
"""
DATA = {"user": "svc", "password": "kc-secret-password"}


@pytest.fixture(scope="module")
async def wallet(mesh: Mesh) -> AsyncIterator[Wallet]:
    settings = wallet_settings(
        mesh.dsn,
        {"NOETL_ENCRYPTION_KEY": new_key()},
        catalog_addr=mesh.addresses["catalog"],
        events_addr=mesh.addresses["events"],
    )
    async with running_secrets(settings) as running:
        yield running


def set_request(name: str, **fields: object) -> secrets_pb2.SetKeychainRequest:
    values: dict[str, Any] = {
        "catalog_id": 1001,
        "keychain_name": name,
        "data_json": b'{"access_token":"at-1"}',
        "credential_type": "bearer",
        **fields,
    }
    return secrets_pb2.SetKeychainRequest(**values)


def resolve_request(alias: str, execution_id: int, worker_id: str = "") -> secrets_pb2.GetCredentialRequest:
    accessor = secrets_pb2.Accessor(execution_id=execution_id, worker_id=worker_id)
    return secrets_pb2.GetCredentialRequest(identifier=alias, include_data=True, accessor=accessor)


def get_request(name: str) -> secrets_pb2.GetKeychainRequest:
    return secrets_pb2.GetKeychainRequest(catalog_id=1001, keychain_name=name, scope_type="global")


async def test_cache_keys_and_default_ttls(wallet: Wallet) -> None:
    cases: list[tuple[dict[str, object], str, int]] = [
        ({}, "tok:1001:global", 604800),
        ({"scope_type": "local", "execution_id": 9}, "tok:1001:9", 3600),
        ({"scope_type": "local"}, "tok:1001:local", 3600),
        ({"scope_type": "shared", "execution_id": 9}, "tok:1001:shared:9", 604800),
        ({"scope_type": "shared"}, "tok:1001:shared", 604800),
    ]
    for fields, key, ttl in cases:
        cached = await wallet.stub.SetKeychain(set_request("tok", **fields))
        assert (cached.cache_key, cached.ttl_seconds) == (key, ttl)
        remaining = cached.expires_at.ToDatetime(tzinfo=UTC) - datetime.now(tz=UTC)
        assert abs(remaining.total_seconds() - ttl) < 30


async def test_ttl_wins_over_expires_at(wallet: Wallet) -> None:
    request = set_request("ttl", ttl_seconds=120)
    request.expires_at.FromDatetime(datetime.now(tz=UTC) + timedelta(days=3))
    assert (await wallet.stub.SetKeychain(request)).ttl_seconds == 120
    only_expiry = set_request("expiry")
    only_expiry.expires_at.FromDatetime(datetime.now(tz=UTC) + timedelta(seconds=500))
    assert 495 <= (await wallet.stub.SetKeychain(only_expiry)).ttl_seconds <= 500


async def test_get_counts_accesses_and_audits(wallet: Wallet, db: asyncpg.Connection) -> None:
    await wallet.stub.SetKeychain(
        set_request("counted", auto_renew=True, renew_config_json=b'{"endpoint":"x"}')
    )
    first = await wallet.stub.GetKeychain(get_request("counted"))
    second = await wallet.stub.GetKeychain(get_request("counted"))
    assert first.status == "success" and json.loads(first.entry.data_json) == {"access_token": "at-1"}
    assert (first.entry.access_count, second.entry.access_count) == (1, 2)
    assert first.entry.auto_renew and json.loads(first.entry.renew_config_json) == {"endpoint": "x"}
    assert 604000 < second.entry.ttl_seconds <= 604800
    rows = await db.fetch("SELECT * FROM noetl.secret_audit WHERE credential = 'counted' ORDER BY audit_id")
    assert [(r["operation"], r["outcome"]) for r in rows] == [("get_keychain", "ok")] * 2
    assert rows[0]["notes"] == "caller=grpc cache_key=counted:1001:global"


async def test_expired_entries_answer_without_data(wallet: Wallet, mesh: Mesh) -> None:
    await wallet.stub.SetKeychain(
        set_request("old", ttl_seconds=-1, auto_renew=True, renew_config_json=b'{"a":1}')
    )
    await wallet.stub.SetKeychain(set_request("old_plain", ttl_seconds=-1))
    expired = await wallet.stub.GetKeychain(get_request("old"))
    assert expired.status == "expired"
    assert expired.entry.data_json == b""
    assert expired.entry.auto_renew and json.loads(expired.entry.renew_config_json) == {"a": 1}
    assert (await wallet.stub.GetKeychain(get_request("old_plain"))).status == "expired"
    missing = await wallet.stub.GetKeychain(get_request("never"))
    assert (missing.status, missing.cache_key, missing.HasField("entry")) == (
        "not_found",
        "never:1001:global",
        False,
    )

    # The periodic cleanup deletes expired rows but keeps auto_renew ones.
    pool = await asyncpg.create_pool(mesh.dsn, min_size=1, max_size=1)
    try:
        assert await SecretsStore(pool).purge_expired_keychain() >= 1
    finally:
        await pool.close()
    assert (await wallet.stub.GetKeychain(get_request("old"))).status == "expired"
    assert (await wallet.stub.GetKeychain(get_request("old_plain"))).status == "not_found"


async def test_delete_and_list(wallet: Wallet) -> None:
    await wallet.stub.SetKeychain(set_request("listed", catalog_id=2002))
    await wallet.stub.SetKeychain(set_request("listed", catalog_id=2002, scope_type="local", execution_id=5))
    listed = await wallet.stub.ListKeychain(secrets_pb2.ListKeychainRequest(catalog_id=2002))
    assert [(e.cache_key, e.scope_type) for e in listed.entries] == [
        ("listed:2002:global", "global"),
        ("listed:2002:5", "local"),
    ]
    assert all(e.data_json == b"" for e in listed.entries)

    deleted = await wallet.stub.DeleteKeychain(
        secrets_pb2.DeleteKeychainRequest(catalog_id=2002, keychain_name="listed", scope_type="global")
    )
    assert (deleted.deleted, deleted.cache_key) == (True, "listed:2002:global")
    again = await wallet.stub.DeleteKeychain(
        secrets_pb2.DeleteKeychainRequest(catalog_id=2002, keychain_name="listed", scope_type="global")
    )
    assert not again.deleted


@pytest.mark.parametrize(("field", "value"), [("scope_type", "galaxy"), ("cache_type", "cookie")])
async def test_invalid_scope_or_cache_type(wallet: Wallet, field: str, value: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await wallet.stub.SetKeychain(set_request("bad", **{field: value}))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
async def execution_id(mesh: Mesh, wallet: Wallet) -> int:
    await mesh.catalog.Register(catalog_pb2.RegisterRequest(content=PLAYBOOK, resource_type="Playbook"))
    await wallet.stub.PutCredential(
        secrets_pb2.PutCredentialRequest(name="kc_pg", type="postgres", data_json=json.dumps(DATA).encode())
    )
    started = await mesh.execution.Start(execution_pb2.StartRequest(path="secrets/keychain_alias"))
    return int(started.execution_id)


async def test_resolve_a_keychain_alias_of_the_execution(
    wallet: Wallet, execution_id: int, db: asyncpg.Connection
) -> None:
    resolved = await wallet.stub.GetCredential(resolve_request("pg_db", execution_id, "w-1"))
    assert json.loads(resolved.credential.data_json) == DATA
    assert resolved.from_keychain

    # Cached in the local scope of this execution, sealed.
    key = await db.fetchval(
        "SELECT cache_key FROM noetl.keychain WHERE keychain_name = 'pg_db' AND execution_id = $1",
        execution_id,
    )
    assert key is not None and key.endswith(f":{execution_id}")
    again = await wallet.stub.GetCredential(
        secrets_pb2.GetCredentialRequest(
            identifier="pg_db", include_data=True, accessor=secrets_pb2.Accessor(execution_id=execution_id)
        )
    )
    assert json.loads(again.credential.data_json) == DATA
    assert again.from_keychain and again.credential.id == 0 and again.credential.type == "keychain"

    rows = await db.fetch(
        "SELECT credential, operation, outcome, worker_id FROM noetl.secret_audit WHERE execution_id = $1 "
        "ORDER BY audit_id",
        execution_id,
    )
    assert [tuple(r) for r in rows] == [
        ("kc_pg", "resolve_keychain", "ok", "w-1"),  # first: the stored credential behind the alias
        ("pg_db", "resolve_keychain", "ok", None),  # then: the cached alias
    ]


async def test_a_stored_credential_wins_over_an_alias(wallet: Wallet, execution_id: int) -> None:
    resolved = await wallet.stub.GetCredential(resolve_request("kc_pg", execution_id))
    assert not resolved.from_keychain and json.loads(resolved.credential.data_json) == DATA


@pytest.mark.parametrize(
    "case",
    [
        ("gcp_token", grpc.StatusCode.FAILED_PRECONDITION, "provider 'gcp'", "provider_fetch_error"),
        ("broken", grpc.StatusCode.INVALID_ARGUMENT, "credential template failed", "template_error"),
        (
            "dangling",
            grpc.StatusCode.NOT_FOUND,
            "refers to credential 'no_such_credential'",
            "credential_not_found",
        ),
        ("unknown", grpc.StatusCode.NOT_FOUND, "Credential not found", "credential_not_found"),
    ],
)
async def test_aliases_that_do_not_resolve(
    wallet: Wallet, execution_id: int, db: asyncpg.Connection, case: tuple[str, grpc.StatusCode, str, str]
) -> None:
    alias, code, detail, outcome = case
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await wallet.stub.GetCredential(resolve_request(alias, execution_id))
    assert caught.value.code() is code
    assert detail in (caught.value.details() or "")
    outcomes = await db.fetch(
        "SELECT outcome FROM noetl.secret_audit WHERE credential = $1 AND execution_id = $2",
        alias,
        execution_id,
    )
    assert [r["outcome"] for r in outcomes] == [outcome]


async def test_an_unknown_execution_resolves_nothing(wallet: Wallet) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await wallet.stub.GetCredential(resolve_request("pg_db", 123456789))
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
