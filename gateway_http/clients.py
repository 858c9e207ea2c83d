"""The gRPC stubs the gateway calls: one catalog and one secrets service, per-shard execution, event and outbox stubs.

Unary calls on these channels raise `MeshError` (see `kernel.grpc_client`).
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from noetl.v1 import (
    admin_pb2_grpc,
    catalog_pb2_grpc,
    events_pb2_grpc,
    execution_pb2_grpc,
    outbox_pb2_grpc,
    pools_pb2_grpc,
    results_pb2_grpc,
    secrets_pb2_grpc,
    vars_pb2_grpc,
)

from gateway_http.settings import GatewaySettings
from kernel.grpc_client import ClientAuth, Sharded, open_channel


class ExecutionShard:
    """ExecutionService and CommandService of one shard share its channel (one process serves both)."""

    __slots__ = ("admin", "commands", "executions", "pools", "results", "vars")

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.executions = execution_pb2_grpc.ExecutionServiceStub(channel)
        self.commands = execution_pb2_grpc.CommandServiceStub(channel)
        # The worker-pool registry is cluster-wide: only shard 0's is called.
        self.pools = pools_pb2_grpc.PoolServiceStub(channel)
        self.vars = vars_pb2_grpc.VarsServiceStub(channel)
        # Database utilities: pool status of every shard, ad-hoc SQL on the shard it names.
        self.admin = admin_pb2_grpc.AdminServiceStub(channel)
        # The result store is per shard: called on the shard of the execution id.
        self.results = results_pb2_grpc.ResultServiceStub(channel)


@dataclass(frozen=True, slots=True)
class GatewayClients:
    catalog: catalog_pb2_grpc.CatalogServiceStub
    execution: Sharded[ExecutionShard]
    events: Sharded[events_pb2_grpc.EventServiceStub]
    outbox: Sharded[outbox_pb2_grpc.OutboxServiceStub]
    secrets: secrets_pb2_grpc.SecretsServiceStub
    catalog_channel: grpc.aio.Channel
    secrets_channel: grpc.aio.Channel

    @classmethod
    def connect(cls, settings: GatewaySettings) -> GatewayClients:
        """Opens the channels (lazily connecting); call inside the event loop that will use them."""
        mesh = ClientAuth(settings.mesh)
        channel = open_channel(settings.catalog_addr, mesh)
        secrets_channel = open_channel(settings.secrets_addr, mesh)
        return cls(
            catalog=catalog_pb2_grpc.CatalogServiceStub(channel),
            execution=Sharded(settings.execution_addrs, ExecutionShard, mesh),
            events=Sharded(settings.events_addrs, events_pb2_grpc.EventServiceStub, mesh),
            outbox=Sharded(settings.outbox_addrs, outbox_pb2_grpc.OutboxServiceStub, mesh),
            secrets=secrets_pb2_grpc.SecretsServiceStub(secrets_channel),
            catalog_channel=channel,
            secrets_channel=secrets_channel,
        )

    async def close(self) -> None:
        await self.catalog_channel.close()
        await self.outbox.close()
        await self.secrets_channel.close()
        await self.execution.close()
        await self.events.close()
