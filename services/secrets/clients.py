"""gRPC adapters for the wallet's ports: the event log, the catalog and the execution service's
claims, never their tables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from noetl.v1 import binding_pb2, binding_pb2_grpc, catalog_pb2, catalog_pb2_grpc, events_pb2, events_pb2_grpc

from kernel import jsonutil
from kernel.errors import NotFound
from kernel.grpc_client import Sharded
from services.secrets.ports import ExecutionOrigin, SecretUse

ROOT_EVENT = "playbook.initialized"
RPC_TIMEOUT_SECONDS = 30


class EventsClient:
    def __init__(self, events: Sharded[events_pb2_grpc.EventServiceStub]) -> None:
        self._events = events

    async def origin(self, execution_id: int) -> ExecutionOrigin | None:
        request = events_pb2.ListEventsRequest(
            execution_id=execution_id, event_type=ROOT_EVENT, page=1, page_size=1
        )
        answer = await self._events.for_execution(execution_id).ListEvents(
            request, timeout=RPC_TIMEOUT_SECONDS
        )
        if not answer.events:
            return None
        root = answer.events[0]
        context = jsonutil.loads(root.context_json)
        workload = context.get("workload") if isinstance(context, dict) else None
        return ExecutionOrigin(
            catalog_id=root.catalog_id, workload=workload if isinstance(workload, dict) else {}
        )


class CatalogClient:
    def __init__(self, stub: catalog_pb2_grpc.CatalogServiceStub) -> None:
        self._stub = stub

    async def keychain(self, catalog_id: int) -> list[Mapping[str, Any]]:
        try:
            answer = await self._stub.GetResource(
                catalog_pb2.GetResourceRequest(catalog_id=catalog_id), timeout=RPC_TIMEOUT_SECONDS
            )
        except NotFound:
            return []
        payload = jsonutil.loads(answer.entry.payload_json)
        definitions = payload.get("keychain") if isinstance(payload, dict) else None
        if not isinstance(definitions, list):
            return []
        return [item for item in definitions if isinstance(item, dict)]


class WorkBindingClient:
    def __init__(self, binding: Sharded[binding_pb2_grpc.WorkBindingServiceStub]) -> None:
        self._binding = binding

    async def secret_use(self, execution_id: int, worker_id: str, alias: str) -> SecretUse:
        request = binding_pb2.CheckSecretUseRequest(
            execution_id=execution_id, worker_id=worker_id, alias=alias
        )
        answer = await self._binding.for_execution(execution_id).CheckSecretUse(
            request, timeout=RPC_TIMEOUT_SECONDS
        )
        return SecretUse(answer.allowed, answer.reason, answer.command_id)
