"""Secrets bound to work: `Resolve` answers only a worker whose live claim names the credential.

Real gRPC throughout: the wallet asks the execution service (`WorkBindingService`) about the
worker's claim on a command issued by `ExecutionService.Start`; refusals are audited.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
from noetl.v1 import catalog_pb2, execution_pb2, secrets_pb2

from services.execution.commands.binding import references
from tests.helpers.secrets import Wallet, new_key, running_secrets, wallet_settings
from tests.helpers.services import Mesh

DATA = {"user": "svc", "password": "bound-secret-password"}
OTHER = {"user": "svc", "password": "unrelated-secret-password"}


def playbook(path: str, credential: str) -> str:
    return f"""\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: binding
  path: {path}
keychain:
  - name: kc_alias
    kind: postgres
    credential: {credential}
workflow:
  - step: start
    tool:
      kind: http
      method: GET
      url: http://127.0.0.1:9/
      auth: {credential}
      headers:
        X-Token: "{{{{ keychain.kc_alias.password }}}}"
"""


@pytest.fixture(scope="module")
async def wallet(mesh: Mesh) -> AsyncIterator[Wallet]:
    settings = wallet_settings(
        mesh.dsn,
        {"NOETL_ENCRYPTION_KEY": new_key()},
        catalog_addr=mesh.addresses["catalog"],
        events_addr=mesh.addresses["events"],
        execution_addr=mesh.addresses["execution"],
    )
    async with running_secrets(settings) as running:
        yield running


@pytest.fixture
async def claimed(mesh: Mesh, wallet: Wallet, db: asyncpg.Connection) -> tuple[int, str]:
    """An execution whose one command worker `w-1` has claimed; returns (execution id, credential)."""
    suffix = uuid.uuid4().hex[:8]
    credential = f"bound_{suffix}"
    path = f"tests/binding/{suffix}"
    for name, data in ((credential, DATA), (f"other_{suffix}", OTHER)):
        await wallet.stub.PutCredential(
            secrets_pb2.PutCredentialRequest(name=name, type="postgres", data_json=json.dumps(data).encode())
        )
    await mesh.catalog.Register(catalog_pb2.RegisterRequest(content=playbook(path, credential)), timeout=10)
    started = await mesh.execution.Start(execution_pb2.StartRequest(path=path), timeout=20)
    event_id = await db.fetchval(
        "SELECT event_id FROM noetl.command WHERE execution_id = $1", started.execution_id
    )
    await mesh.commands.Claim(
        execution_pb2.ClaimRequest(event_id=event_id, execution_id=started.execution_id, worker_id="w-1"),
        timeout=20,
    )
    return started.execution_id, credential


async def resolve(
    wallet: Wallet, alias: str, execution_id: int, worker_id: str
) -> secrets_pb2.ResolveResponse:
    answer: secrets_pb2.ResolveResponse = await wallet.stub.Resolve(
        secrets_pb2.ResolveRequest(alias=alias, execution_id=execution_id, worker_id=worker_id)
    )
    return answer


async def refused(wallet: Wallet, alias: str, execution_id: int, worker_id: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await resolve(wallet, alias, execution_id, worker_id)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED, caught.value
    return caught.value.details() or ""


async def denials(db: asyncpg.Connection, execution_id: int) -> list[tuple[str, str | None, str]]:
    rows = await db.fetch(
        "SELECT credential, worker_id, notes FROM noetl.secret_audit "
        "WHERE execution_id = $1 AND operation = 'resolve' AND outcome = 'denied' ORDER BY audit_id",
        execution_id,
    )
    return [(r["credential"], r["worker_id"], r["notes"]) for r in rows]


async def test_the_claiming_worker_resolves_what_its_command_names(
    wallet: Wallet, claimed: tuple[int, str]
) -> None:
    execution_id, credential = claimed
    by_auth = await resolve(wallet, credential, execution_id, "w-1")
    assert json.loads(by_auth.data_json) == DATA and by_auth.source == "credential"
    by_template = await resolve(wallet, "kc_alias", execution_id, "w-1")
    assert json.loads(by_template.data_json) == DATA and by_template.source == "keychain"


async def test_everyone_else_is_refused_and_audited(
    wallet: Wallet, claimed: tuple[int, str], db: asyncpg.Connection
) -> None:
    execution_id, credential = claimed
    other = "other_" + credential.removeprefix("bound_")

    assert "no_live_claim" in await refused(wallet, credential, execution_id, "w-2")
    assert "no_live_claim" in await refused(wallet, credential, execution_id, "")
    assert "not_referenced" in await refused(wallet, other, execution_id, "w-1")
    assert "no_live_claim" in await refused(wallet, credential, 123456789, "w-1")

    assert await denials(db, execution_id) == [
        (credential, "w-2", "caller=worker no_live_claim"),
        (credential, None, "caller=worker no_live_claim"),
        (other, "w-1", "caller=worker not_referenced"),
    ]
    # A refusal reads nothing: no row of any other outcome for these reads.
    assert not await db.fetchval(
        "SELECT count(*) FROM noetl.secret_audit WHERE execution_id = $1 AND outcome <> 'denied'",
        execution_id,
    )


async def test_a_lapsed_or_finished_claim_binds_nothing(
    wallet: Wallet, claimed: tuple[int, str], db: asyncpg.Connection
) -> None:
    execution_id, credential = claimed
    await db.execute(
        "UPDATE noetl.command SET lease_until = now() - interval '1 second' WHERE execution_id = $1",
        execution_id,
    )
    assert "no_live_claim" in await refused(wallet, credential, execution_id, "w-1")
    await db.execute(
        "UPDATE noetl.command SET lease_until = now() + interval '1 minute', status = 'COMPLETED' "
        "WHERE execution_id = $1",
        execution_id,
    )
    assert "no_live_claim" in await refused(wallet, credential, execution_id, "w-1")


@pytest.mark.parametrize(
    ("tool_config", "expected"),
    [
        ({"auth": "pg"}, True),
        ({"auth": " pg "}, True),
        ({"headers": {"A": "{{ keychain.pg.token }}"}}, True),
        ({"headers": {"A": "{{ keychain['pg']['token'] }}"}}, True),
        ({"headers": {"A": "{{ keychain.pg_other.token }}"}}, False),
        ({"auth": "pg_other"}, False),
        ({"code": "print('pg is my favourite')"}, False),
        ([{"auth": "x"}, {"name": "pg", "provider": "credential"}], True),
    ],
)
def test_what_counts_as_a_reference(tool_config: object, expected: bool) -> None:
    context = {"tool_config": tool_config, "input": {}, "render_context": {"workload": {"x": "pg"}}}
    assert references(context, "pg") is expected
