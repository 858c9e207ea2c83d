"""Who may call what, over real gRPC: every RPC of every service by every caller (token mode).

The in-process mesh (catalog, outbox, execution, events) and the secrets wallet run with mesh
auth on, each with its own token, exactly as `noetl-mesh up` configures them. Each call carries
an empty request: an allowed caller gets past the guard (whatever the servicer then answers), a
refused one gets UNAUTHENTICATED or PERMISSION_DENIED from the guard itself.

Then one worker against another: two worker processes with tokens of their own (`worker:w-a`,
`worker:w-b`, issued as `noetl-mesh up` issues its worker's) on real claims. Each claims, reports
and resolves only as itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from noetl.v1 import (
    admin_pb2,
    binding_pb2,
    catalog_pb2,
    events_pb2,
    execution_pb2,
    outbox_pb2,
    pools_pb2,
    results_pb2,
    secrets_pb2,
    vars_pb2,
)
from noetl.v1.catalog_pb2_grpc import CatalogServiceStub
from noetl.v1.events_pb2_grpc import EventServiceStub
from noetl.v1.execution_pb2_grpc import CommandServiceStub, ExecutionServiceStub
from noetl.v1.pools_pb2_grpc import PoolServiceStub
from noetl.v1.secrets_pb2_grpc import SecretsServiceStub

from kernel.mesh_auth import TOKEN, MeshAuth, token_digest
from kernel.mesh_policy import CALLERS, POLICY
from noetl_mesh.credentials import TOKENS_FILE, MeshCredentials, add_worker, mesh_credentials, token_file
from tests.helpers.bus import unique_bus
from tests.helpers.infra import NatsServer
from tests.helpers.secrets import new_key, running_secrets, wallet_settings
from tests.helpers.services import running_mesh
from tests.helpers.waiting import wait_for
from worker.registration import worker_registration

STRANGER = "stranger"  # holds a valid token, but the policy names it nowhere
NOBODY = "(no token)"
FORGER = "(unknown token)"
# Which process serves each service.
SERVED_BY = {
    "CatalogService": "catalog",
    "EventService": "events",
    "OutboxService": "outbox",
    "SecretsService": "secrets",
    **{
        name: "execution"
        for name in (
            "ExecutionService",
            "CommandService",
            "PoolService",
            "AdminService",
            "VarsService",
            "ResultService",
            "WorkBindingService",
        )
    },
}
_FILES = (admin_pb2, binding_pb2, catalog_pb2, events_pb2, execution_pb2, outbox_pb2, pools_pb2, results_pb2)
PROTO_FILES = (*_FILES, secrets_pb2, vars_pb2)
REFUSED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


def methods() -> Iterator[tuple[str, MethodDescriptor]]:
    for module in PROTO_FILES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                yield f"{service.name}/{method.name}", method


@dataclass(frozen=True)
class Secured:
    addresses: dict[str, str]
    credentials: MeshCredentials

    def auth(self, caller: str) -> MeshAuth:
        return MeshAuth(
            mode=TOKEN,
            identity=caller,
            token_file=str(token_file(self.credentials.directory, caller)),
            tokens_file=str(self.credentials.directory / TOKENS_FILE),
        )


@pytest.fixture(scope="module")
async def secured(
    module_dsn: str, nats_server: NatsServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Secured]:
    made = mesh_credentials(tmp_path_factory.mktemp("mesh-auth"), {}, (*CALLERS, STRANGER))
    assert made is not None
    partial = Secured({}, made)
    async with running_mesh(
        module_dsn, unique_bus(nats_server.url, "mesh_auth"), mesh_auth=partial.auth
    ) as mesh:
        settings = wallet_settings(
            module_dsn,
            {"NOETL_ENCRYPTION_KEY": new_key()},
            catalog_addr=mesh.addresses["catalog"],
            events_addr=mesh.addresses["events"],
            execution_addr=mesh.addresses["execution"],
            mesh=partial.auth("secrets"),
        )
        async with running_secrets(settings) as wallet:
            yield Secured({**mesh.addresses, "secrets": wallet.address}, made)


@dataclass(frozen=True)
class Callers:
    """A plain channel per process and each caller's token (None: no token at all)."""

    channels: dict[str, grpc.aio.Channel]
    tokens: dict[str, str | None]


@pytest.fixture(scope="module")
async def callers(secured: Secured) -> AsyncIterator[Callers]:
    tokens: dict[str, str | None] = {
        caller: token_file(secured.credentials.directory, caller).read_text().strip()
        for caller in (*CALLERS, STRANGER)
    }
    tokens[NOBODY] = None
    tokens[FORGER] = "not-a-token-anyone-issued"
    opened = {process: grpc.aio.insecure_channel(address) for process, address in secured.addresses.items()}
    yield Callers(opened, tokens)
    for channel in opened.values():
        await channel.close()


async def call(
    channel: grpc.aio.Channel, token: str | None, name: str, method: MethodDescriptor, request: Any = None
) -> grpc.StatusCode:
    """The status the call ends with (OK when it answers); streams are cut off after a moment."""
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()
    request_type = message_factory.GetMessageClass(method.input_type)
    response_type = message_factory.GetMessageClass(method.output_type)
    path = f"/noetl.v1.{name}"
    kind = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }[(method.client_streaming, method.server_streaming)]
    stub = kind(
        path,
        request_serializer=request_type.SerializeToString,
        response_deserializer=response_type.FromString,
    )
    message = request if request is not None else request_type()
    argument: Any = _one(message) if method.client_streaming else message
    try:
        if method.server_streaming:
            async for _ in stub(argument, timeout=1.0, metadata=metadata):
                pass
        else:
            await stub(argument, timeout=10.0, metadata=metadata)
    except grpc.aio.AioRpcError as exc:
        if exc.code() is grpc.StatusCode.PERMISSION_DENIED and "may not call" not in (exc.details() or ""):
            return grpc.StatusCode.FAILED_PRECONDITION  # the servicer's own refusal: the guard let it pass
        return exc.code()
    return grpc.StatusCode.OK


async def _one(message: Any) -> AsyncIterator[Any]:
    yield message


def test_every_rpc_of_every_service_has_a_policy_entry() -> None:
    names = {name for name, _ in methods()}
    assert names - POLICY.keys() == set(), "RPCs nobody may call: list their callers in mesh_policy.POLICY"
    unknown = {key.partition("+")[0] for key in POLICY} - names
    assert unknown == set(), "policy entries for RPCs that do not exist"
    assert all(callers <= set(CALLERS) for callers in POLICY.values())


async def test_the_caller_by_rpc_matrix(callers: Callers) -> None:
    wrong: list[str] = []
    everyone = (*CALLERS, STRANGER, NOBODY, FORGER)
    for name, method in methods():
        channel = callers.channels[SERVED_BY[name.partition("/")[0]]]
        codes = await asyncio.gather(*(call(channel, callers.tokens[who], name, method) for who in everyone))
        for caller, code in zip(everyone, codes, strict=True):
            allowed = caller in POLICY[name]
            if allowed == (code in REFUSED):
                wrong.append(
                    f"{name} by {caller}: {code.name}, expected {'allowed' if allowed else 'refused'}"
                )
            elif caller in (NOBODY, FORGER) and code is not grpc.StatusCode.UNAUTHENTICATED:
                wrong.append(f"{name} by {caller}: {code.name}, expected UNAUTHENTICATED")
            elif (
                not allowed
                and caller not in (NOBODY, FORGER)
                and code is not grpc.StatusCode.PERMISSION_DENIED
            ):
                wrong.append(f"{name} by {caller}: {code.name}, expected PERMISSION_DENIED")
    assert wrong == [], "\n".join(wrong)


async def test_credential_data_only_for_the_gateway_and_the_execution_service(callers: Callers) -> None:
    method = secrets_pb2.DESCRIPTOR.services_by_name["SecretsService"].methods_by_name["GetCredential"]
    for include_data in (False, True):
        request = secrets_pb2.GetCredentialRequest(identifier="nothing-here", include_data=include_data)
        for caller in CALLERS:
            code = await call(
                callers.channels["secrets"],
                callers.tokens[caller],
                "SecretsService/GetCredential",
                method,
                request,
            )
            allowed = caller == "gateway" or (include_data and caller == "execution")
            assert (code is grpc.StatusCode.NOT_FOUND) == allowed, (caller, include_data, code)
            assert allowed or code is grpc.StatusCode.PERMISSION_DENIED, (caller, include_data, code)


async def test_health_answers_without_credentials(secured: Secured) -> None:
    for address in secured.addresses.values():
        async with grpc.aio.insecure_channel(address) as channel:
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert answer.status == health_pb2.HealthCheckResponse.SERVING


# ---------------------------------------------------------------------------------------------
# One worker against another

WORKER_A = "w-a"
WORKER_B = "w-b"
CREDENTIAL_DATA = {"user": "svc", "password": "per-worker-secret"}


def bound_playbook(path: str, credential: str) -> str:
    return f"""\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: per_worker
  path: {path}
workflow:
  - step: start
    tool:
      kind: http
      method: GET
      url: http://127.0.0.1:9/
      auth: {credential}
"""


def bearer_of(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token is not None else ()


@dataclass(frozen=True)
class WorkerRun:
    """Two executions of one playbook naming `credential`, each with one pending command."""

    credential: str
    commands: dict[int, int]  # execution id → its command's event id (worker B's, worker A's)
    worker_tokens: dict[str, str]


@pytest.fixture(scope="module")
async def worker_tokens(secured: Secured, callers: Callers) -> dict[str, str]:
    """A token of its own for each of two worker processes; in use once every server has read it."""
    tokens = {
        worker_id: _issue(secured.credentials.directory, worker_id) for worker_id in (WORKER_A, WORKER_B)
    }
    # A call each process serves: a method it does not serve is answered UNIMPLEMENTED before
    # any credential is looked at, which would say nothing about that process's tokens.
    probes = {
        "execution": "CommandService/Claim",
        "events": "EventService/StreamEmit",
        "secrets": "SecretsService/Resolve",
    }
    served = dict(methods())

    async def known_everywhere() -> bool:
        codes = [
            await call(callers.channels[process], token, name, served[name])
            for process, name in probes.items()
            for token in tokens.values()
        ]
        return grpc.StatusCode.UNAUTHENTICATED not in codes and grpc.StatusCode.UNIMPLEMENTED not in codes

    await wait_for(known_everywhere, what="the servers to read the new worker tokens", within=5.0)
    return tokens


def _issue(directory: Path, worker_id: str) -> str:
    env = add_worker(directory, worker_id)
    assert env["NOETL_MESH_IDENTITY"] == f"worker:{worker_id}"
    return Path(env["NOETL_MESH_TOKEN_FILE"]).read_text().strip()


@pytest.fixture
async def worker_run(
    secured: Secured, callers: Callers, worker_tokens: dict[str, str], module_dsn: str
) -> WorkerRun:
    gateway = bearer_of(callers.tokens["gateway"])
    suffix = uuid.uuid4().hex[:8]
    credential, path = f"per_worker_{suffix}", f"tests/mesh_auth/{suffix}"
    await SecretsServiceStub(callers.channels["secrets"]).PutCredential(
        secrets_pb2.PutCredentialRequest(
            name=credential, type="postgres", data_json=json.dumps(CREDENTIAL_DATA).encode()
        ),
        metadata=gateway,
    )
    await CatalogServiceStub(callers.channels["catalog"]).Register(
        catalog_pb2.RegisterRequest(content=bound_playbook(path, credential)), metadata=gateway, timeout=10
    )
    executions = ExecutionServiceStub(callers.channels["execution"])
    commands: dict[int, int] = {}
    conn = await asyncpg.connect(module_dsn)
    try:
        for _ in range(2):
            started = await executions.Start(
                execution_pb2.StartRequest(path=path), metadata=gateway, timeout=20
            )
            commands[started.execution_id] = await conn.fetchval(
                "SELECT event_id FROM noetl.command WHERE execution_id = $1", started.execution_id
            )
    finally:
        await conn.close()
    return WorkerRun(credential, commands, worker_tokens)


async def claim(callers: Callers, token: str, execution_id: int, event_id: int, worker_id: str) -> None:
    await CommandServiceStub(callers.channels["execution"]).Claim(
        execution_pb2.ClaimRequest(
            event_id=event_id, execution_id=execution_id, worker_id=worker_id, start=True
        ),
        metadata=bearer_of(token),
        timeout=20,
    )


async def resolve(callers: Callers, token: str, alias: str, execution_id: int, worker_id: str) -> Any:
    answer = await SecretsServiceStub(callers.channels["secrets"]).Resolve(
        secrets_pb2.ResolveRequest(alias=alias, execution_id=execution_id, worker_id=worker_id),
        metadata=bearer_of(token),
        timeout=20,
    )
    return json.loads(answer.data_json)


async def complete(callers: Callers, token: str, execution_id: int, command_id: int, worker_id: str) -> None:
    """What a worker sends when its command is done: `command.completed` on a StreamEmit."""
    event = events_pb2.WorkerEvent(
        execution_id=execution_id,
        step="start",
        event_type="command.completed",
        payload_json=json.dumps({"command_id": command_id}).encode(),
        meta_json=json.dumps({"command_id": command_id}).encode(),
        worker_id=worker_id,
        actionable=True,
        informative=True,
    )
    await EventServiceStub(callers.channels["events"]).StreamEmit(
        _one(events_pb2.StreamEmitRequest(events=[event])), metadata=bearer_of(token), timeout=20
    )


async def denied(call: Any) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED, caught.value
    return caught.value.details() or ""


async def test_a_worker_token_claims_reports_and_resolves_only_as_its_own_worker(
    callers: Callers, worker_run: WorkerRun, module_dsn: str
) -> None:
    (b_execution, b_event), (a_execution, a_event) = worker_run.commands.items()
    token_a, token_b = worker_run.worker_tokens[WORKER_A], worker_run.worker_tokens[WORKER_B]
    alias = worker_run.credential

    # Worker A's token cannot claim as worker B; B's own token can.
    assert "may not claim as worker 'w-b'" in await denied(
        claim(callers, token_a, b_execution, b_event, WORKER_B)
    )
    await claim(callers, token_b, b_execution, b_event, WORKER_B)
    conn = await asyncpg.connect(module_dsn)
    try:
        b_command = await conn.fetchval(
            "SELECT command_id FROM noetl.command WHERE execution_id = $1", b_execution
        )

        # A cannot read what B's claim binds, whichever worker id it names.
        assert "not_this_worker" in await denied(resolve(callers, token_a, alias, b_execution, WORKER_B))
        assert "no_live_claim" in await denied(resolve(callers, token_a, alias, b_execution, WORKER_A))
        assert await resolve(callers, token_b, alias, b_execution, WORKER_B) == CREDENTIAL_DATA
        # Nor complete B's command: not as B, and not as itself (it never claimed it).
        assert "may not report as worker 'w-b'" in await denied(
            complete(callers, token_a, b_execution, b_command, WORKER_B)
        )
        assert "has no claim on command" in await denied(
            complete(callers, token_a, b_execution, b_command, WORKER_A)
        )
        assert not await conn.fetchval(
            "SELECT count(*) FROM noetl.event WHERE execution_id = $1 AND event_type = 'command.completed'",
            b_execution,
        )
        refusals = await conn.fetch(
            "SELECT worker_id, notes FROM noetl.secret_audit WHERE execution_id = $1 AND outcome = 'denied' "
            "ORDER BY audit_id",
            b_execution,
        )
        assert [(r["worker_id"], r["notes"]) for r in refusals] == [
            (WORKER_B, "caller=worker not_this_worker"),
            (WORKER_A, "caller=worker no_live_claim"),
        ]

        # A's token still works for A, on A's own claim; and B's does not reach it.
        await claim(callers, token_a, a_execution, a_event, WORKER_A)
        a_command = await conn.fetchval(
            "SELECT command_id FROM noetl.command WHERE execution_id = $1", a_execution
        )
        assert await resolve(callers, token_a, alias, a_execution, WORKER_A) == CREDENTIAL_DATA
        assert "has no claim on command" in await denied(
            complete(callers, token_b, a_execution, a_command, WORKER_B)
        )
        await complete(callers, token_a, a_execution, a_command, WORKER_A)
        assert (
            await conn.fetchval(
                "SELECT worker_id FROM noetl.event WHERE execution_id = $1 AND event_type = 'command.completed'",
                a_execution,
            )
            == WORKER_A
        )
    finally:
        await conn.close()


async def test_a_worker_token_keeps_only_its_own_pool_entry(
    callers: Callers, worker_tokens: dict[str, str]
) -> None:
    """Another worker's standing decides whether its claims may be taken over: not A's to change."""
    pools = PoolServiceStub(callers.channels["execution"])
    token_a, token_b = worker_tokens[WORKER_A], worker_tokens[WORKER_B]
    b_entry = worker_registration(WORKER_B, ("shared",), 2)
    await pools.Register(
        pools_pb2.PoolServiceRegisterRequest(registration=b_entry), metadata=bearer_of(token_b)
    )
    kind = b_entry.kind
    for attempt in (
        pools.Register(
            pools_pb2.PoolServiceRegisterRequest(registration=b_entry), metadata=bearer_of(token_a)
        ),
        pools.Deregister(
            pools_pb2.PoolServiceDeregisterRequest(kind=kind, name=WORKER_B), metadata=bearer_of(token_a)
        ),
        pools.Heartbeat(
            pools_pb2.PoolServiceHeartbeatRequest(kind=kind, name=WORKER_B), metadata=bearer_of(token_a)
        ),
    ):
        assert "may not change the pool entry of 'w-b'" in await denied(attempt)
    beat = await pools.Heartbeat(
        pools_pb2.PoolServiceHeartbeatRequest(kind=kind, name=WORKER_B), metadata=bearer_of(token_b)
    )
    assert not beat.recreated  # B's entry is still there, untouched by A
    assert (
        await pools.Deregister(
            pools_pb2.PoolServiceDeregisterRequest(kind=kind, name=WORKER_B), metadata=bearer_of(token_b)
        )
    ).found


async def test_the_gateway_still_claims_for_http_workers(callers: Callers, worker_run: WorkerRun) -> None:
    """HTTP workers claim through the gateway (its identity is not a worker's): any worker id."""
    execution_id, event_id = next(iter(worker_run.commands.items()))
    await claim(callers, callers.tokens["gateway"] or "", execution_id, event_id, "http-worker-1")


async def test_a_rotated_token_replaces_the_old_one_without_a_restart(
    secured: Secured, callers: Callers
) -> None:
    method = outbox_pb2.DESCRIPTOR.services_by_name["OutboxService"].methods_by_name["PendingCount"]
    channel = callers.channels["outbox"]
    old = callers.tokens["gateway"]
    new = "rotated-" + os.urandom(16).hex()
    tokens = secured.credentials.directory / TOKENS_FILE
    kept = [line for line in tokens.read_text().splitlines() if not line.startswith("gateway ")]
    _replace(tokens, "\n".join([*kept, f"gateway {token_digest(new)}"]) + "\n")

    async def switched() -> bool:
        old_code = await call(channel, old, "OutboxService/PendingCount", method)
        new_code = await call(channel, new, "OutboxService/PendingCount", method)
        return old_code is grpc.StatusCode.UNAUTHENTICATED and new_code is grpc.StatusCode.OK

    await wait_for(switched, what="the rotated gateway token to replace the old one", within=5.0)


def _replace(path: Path, text: str) -> None:
    staging = path.with_name(path.name + ".new")
    staging.write_text(text)
    os.replace(staging, path)
