"""Who may call what, over real gRPC: every RPC of every service by every caller (token mode).

The in-process mesh (catalog, outbox, execution, events) and the secrets wallet run with mesh
auth on, each with its own token, exactly as `noetl-mesh up` configures them. Each call carries
an empty request: an allowed caller gets past the guard (whatever the servicer then answers), a
refused one gets UNAUTHENTICATED or PERMISSION_DENIED from the guard itself.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

from kernel.mesh_auth import TOKEN, MeshAuth, token_digest
from kernel.mesh_policy import CALLERS, POLICY
from noetl_mesh.credentials import TOKENS_FILE, MeshCredentials, mesh_credentials, token_file
from tests.helpers.bus import unique_bus
from tests.helpers.infra import NatsServer
from tests.helpers.secrets import new_key, running_secrets, wallet_settings
from tests.helpers.services import running_mesh
from tests.helpers.waiting import wait_for

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
