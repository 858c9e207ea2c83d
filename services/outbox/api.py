"""OutboxService servicer: requests → `Outbox` calls → responses."""

from __future__ import annotations

import grpc
from noetl.v1 import outbox_pb2, outbox_pb2_grpc

from kernel.wire import timestamp
from services.outbox.service import DEFAULT_LIMIT, DEFAULT_MAX_DELAY, Outbox
from services.outbox.store import DeadRow, Failure


def _dead_row(row: DeadRow) -> outbox_pb2.DeadRow:
    message = outbox_pb2.DeadRow(
        outbox_id=row.outbox_id,
        event_id=row.event_id,
        execution_id=row.execution_id,
        subject=row.subject,
        attempts=row.attempts,
        last_error=row.last_error,
    )
    if row.created_at is not None:
        message.created_at.CopyFrom(timestamp(row.created_at))
    if row.dead_at is not None:
        message.dead_at.CopyFrom(timestamp(row.dead_at))
    return message


class OutboxApi(outbox_pb2_grpc.OutboxServiceServicer):
    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    async def ClaimRows(
        self, request: outbox_pb2.ClaimRowsRequest, context: grpc.aio.ServicerContext
    ) -> outbox_pb2.ClaimRowsResponse:
        rows = await self._outbox.claim(request.limit or DEFAULT_LIMIT)
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
        return outbox_pb2.MarkPublishedResponse(
            marked=await self._outbox.mark_published(list(request.outbox_ids))
        )

    async def MarkFailed(
        self, request: outbox_pb2.MarkFailedRequest, context: grpc.aio.ServicerContext
    ) -> outbox_pb2.MarkFailedResponse:
        delay = await self._outbox.mark_failed(
            Failure(request.outbox_id, request.error, max(1, request.attempts)),
            request.max_delay_seconds or DEFAULT_MAX_DELAY,
        )
        return outbox_pb2.MarkFailedResponse(marked=True, available_at_in=delay)

    async def PendingCount(
        self, request: outbox_pb2.PendingCountRequest, context: grpc.aio.ServicerContext
    ) -> outbox_pb2.PendingCountResponse:
        return outbox_pb2.PendingCountResponse(pending=await self._outbox.pending())

    async def ListDead(
        self, request: outbox_pb2.ListDeadRequest, context: grpc.aio.ServicerContext
    ) -> outbox_pb2.ListDeadResponse:
        page = await self._outbox.list_dead(after=request.after_outbox_id, limit=request.limit)
        response = outbox_pb2.ListDeadResponse(rows=[_dead_row(r) for r in page.rows], dead=page.dead)
        if page.next_after is not None:
            response.next_after = page.next_after
        return response

    async def Requeue(
        self, request: outbox_pb2.RequeueRequest, context: grpc.aio.ServicerContext
    ) -> outbox_pb2.RequeueResponse:
        requeued = await self._outbox.requeue(list(request.outbox_ids), every=request.all)
        return outbox_pb2.RequeueResponse(requeued=requeued)
