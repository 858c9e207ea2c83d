"""Adapters from the event log's ports to the other services' gRPC APIs."""

from __future__ import annotations

from collections.abc import Sequence

from noetl.v1 import execution_pb2, execution_pb2_grpc, outbox_pb2, outbox_pb2_grpc

from services.common.grpc_client import Sharded
from services.events.chain import StoredEvent
from services.events.messages import event_message


class ExecutionAdvancer:
    def __init__(self, execution: Sharded[execution_pb2_grpc.ExecutionServiceStub]) -> None:
        self._execution = execution

    async def advance(self, execution_id: int, events: Sequence[StoredEvent]) -> int:
        response = await self._execution.for_execution(execution_id).Advance(
            execution_pb2.AdvanceRequest(
                execution_id=execution_id, events=[event_message(e) for e in events]
            ),
            timeout=60,
        )
        return int(response.commands_generated)


class OutboxClient:
    def __init__(self, stub: outbox_pb2_grpc.OutboxServiceStub) -> None:
        self._stub = stub

    async def mark_published(self, outbox_ids: list[int]) -> None:
        await self._stub.MarkPublished(outbox_pb2.MarkPublishedRequest(outbox_ids=outbox_ids), timeout=10)

    async def mark_failed(self, outbox_id: int, error: str, attempts: int) -> None:
        await self._stub.MarkFailed(
            outbox_pb2.MarkFailedRequest(outbox_id=outbox_id, error=error, attempts=attempts), timeout=10
        )
