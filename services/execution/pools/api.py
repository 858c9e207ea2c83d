"""PoolService: the worker-pool registry (on shard 0)."""

from __future__ import annotations

import grpc
from noetl.v1 import pools_pb2, pools_pb2_grpc

from kernel.errors import PermissionDenied
from kernel.mesh_guard import worker_refusal
from kernel.wire import optional, timestamp
from services.execution.messages import json_object
from services.execution.pools.service import Pools, Registration
from services.execution.pools.store import RuntimeRow


def _registration(message: pools_pb2.PoolRegistration) -> Registration:
    return Registration(
        name=message.name,
        kind=message.kind,
        uri=optional(message, "uri"),
        status=message.status,
        capacity=optional(message, "capacity"),
        labels=json_object(message.labels_json, "labels_json"),
        runtime=json_object(message.runtime_json, "runtime_json"),
    )


def _runtime_entry(row: RuntimeRow) -> pools_pb2.RuntimeEntry:
    message = pools_pb2.RuntimeEntry(
        runtime_id=row.runtime_id,
        name=row.name,
        kind=row.kind,
        status=row.status,
        labels_json=(row.labels or "").encode(),
        capabilities_json=(row.capabilities or "").encode(),
        runtime_json=(row.runtime or "").encode(),
        heartbeat=timestamp(row.heartbeat),
        created_at=timestamp(row.created_at),
        updated_at=timestamp(row.updated_at),
    )
    if row.uri is not None:
        message.uri = row.uri
    if row.capacity is not None:
        message.capacity = row.capacity
    return message


def _own_entry(rpc: str, name: str) -> None:
    """A worker process (`worker:<id>`) keeps only its own entry: another's standing decides
    whether that worker's claims may be taken over (services/execution/commands/claims.py).

    Raises:
        PermissionDenied: the entry is another worker's.
    """
    if worker_refusal(rpc, name) is not None:
        raise PermissionDenied(f"these mesh credentials may not change the pool entry of {name!r}")


class PoolApi(pools_pb2_grpc.PoolServiceServicer):
    def __init__(self, pools: Pools) -> None:
        self._pools = pools

    async def Register(
        self, request: pools_pb2.PoolServiceRegisterRequest, context: grpc.aio.ServicerContext
    ) -> pools_pb2.PoolServiceRegisterResponse:
        _own_entry("PoolService/Register", request.registration.name)
        runtime_id = await self._pools.register(_registration(request.registration))
        return pools_pb2.PoolServiceRegisterResponse(runtime_id=runtime_id)

    async def Deregister(
        self, request: pools_pb2.PoolServiceDeregisterRequest, context: grpc.aio.ServicerContext
    ) -> pools_pb2.PoolServiceDeregisterResponse:
        _own_entry("PoolService/Deregister", request.name)
        found = await self._pools.deregister(request.kind, request.name)
        return pools_pb2.PoolServiceDeregisterResponse(found=found)

    async def Heartbeat(
        self, request: pools_pb2.PoolServiceHeartbeatRequest, context: grpc.aio.ServicerContext
    ) -> pools_pb2.PoolServiceHeartbeatResponse:
        _own_entry("PoolService/Heartbeat", request.name)
        if request.HasField("registration"):
            _own_entry("PoolService/Heartbeat", request.registration.name)
        registration = _registration(request.registration) if request.HasField("registration") else None
        beat = await self._pools.heartbeat(request.kind, request.name, registration)
        return pools_pb2.PoolServiceHeartbeatResponse(runtime_id=beat.runtime_id, recreated=beat.recreated)

    async def List(
        self, request: pools_pb2.PoolServiceListRequest, context: grpc.aio.ServicerContext
    ) -> pools_pb2.PoolServiceListResponse:
        rows = await self._pools.entries(
            request.kind,
            optional(request, "runtime_type"),
            optional(request, "status"),
        )
        return pools_pb2.PoolServiceListResponse(entries=[_runtime_entry(row) for row in rows])
