"""OutboxService servicer."""

from __future__ import annotations

import grpc
from noetl.v1 import outbox_pb2, outbox_pb2_grpc

from services.common.errors import InvalidArgument
from services.outbox.store import OutboxStore


class OutboxApi(outbox_pb2_grpc.OutboxServiceServicer):
    def __init__(self, store: OutboxStore) -> None:
        self._store = store

    async def ClaimRows(
        self, request: outbox_pb2.ClaimRowsRequest, context: grpc.aio.ServicerContext
    ) -> outbox_pb2.ClaimRowsResponse:
        rows = await self._store.claim(request.limit or 100)
        return outbox_pb2.ClaimRowsResponse(
            rows=[
                outbox_pb2.OutboxRow(
                    outbox_id=r.outbox_id,
                    event_id=r.event_id,
                    execution_id=r.execution_id,
                    subject=r.subject,
                    payload_json=r.payload.encode(),
                    payload_codec=r.payload_codec,
                    attempts=r.attempts,
                )
                for r in rows
            ]
        )

    async def MarkPublished(
        self, request: outbox_pb2.MarkPublishedRequest, context: grpc.aio.ServicerContext
    ) -> outbox_pb2.MarkPublishedResponse:
        if not request.outbox_ids:
            raise InvalidArgument("outbox_ids must not be empty")
        return outbox_pb2.MarkPublishedResponse(
            marked=await self._store.mark_published(list(request.outbox_ids))
        )

    async def MarkFailed(
        self, request: outbox_pb2.MarkFailedRequest, context: grpc.aio.ServicerContext
    ) -> outbox_pb2.MarkFailedResponse:
        if not request.error.strip():
            raise InvalidArgument("error must not be empty")
        delay = await self._store.mark_failed(
            request.outbox_id, request.error, max(1, request.attempts), request.max_delay_seconds or 300
        )
        return outbox_pb2.MarkFailedResponse(marked=True, available_at_in=delay)

    async def PendingCount(
        self, request: outbox_pb2.PendingCountRequest, context: grpc.aio.ServicerContext
    ) -> outbox_pb2.PendingCountResponse:
        return outbox_pb2.PendingCountResponse(pending=await self._store.pending())
