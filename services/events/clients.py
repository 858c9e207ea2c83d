"""Adapters from the event log's ports to the other services' gRPC APIs."""

from __future__ import annotations

from noetl.v1 import outbox_pb2, outbox_pb2_grpc


class OutboxClient:
    def __init__(self, stub: outbox_pb2_grpc.OutboxServiceStub) -> None:
        self._stub = stub

    async def mark_published(self, outbox_ids: list[int]) -> None:
        await self._stub.MarkPublished(outbox_pb2.MarkPublishedRequest(outbox_ids=outbox_ids), timeout=10)

    async def mark_failed(self, outbox_id: int, error: str, attempts: int) -> None:
        await self._stub.MarkFailed(
            outbox_pb2.MarkFailedRequest(outbox_id=outbox_id, error=error, attempts=attempts), timeout=10
        )
