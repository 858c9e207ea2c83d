"""gRPC adapters for the execution context's ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from nats.js import JetStreamContext
from noetl.v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    common_pb2,
    events_pb2,
    events_pb2_grpc,
    execution_pb2,
    execution_pb2_grpc,
)

from kernel import jsonutil, rpc_errors
from kernel.coalescing import Coalescer, Limits
from kernel.grpc_client import Sharded
from kernel.timeutil import as_utc
from kernel.wire import optional, optional_time
from services.execution.engine.records import EventRecord, NewEvent
from services.execution.orchestration.store import ExecutionStore
from services.execution.ports import Appended, LogEvent, Notification, PlaybookEntry

# A log is read in pages of this many events: never one message whatever its length.
LOG_PAGE = 500


def log_event_from_message(event: common_pb2.Event) -> LogEvent:
    return LogEvent(
        event_id=event.event_id,
        execution_id=event.execution_id,
        catalog_id=event.catalog_id,
        parent_execution_id=optional(event, "parent_execution_id"),
        prev_event_id=optional(event, "prev_event_id"),
        event_type=event.event_type,
        node_name=event.node_name or None,
        node_type=event.node_type or None,
        status=event.status or None,
        context=jsonutil.loads(event.context_json),
        meta=jsonutil.loads(event.meta_json),
        error=optional(event, "error"),
        worker_id=optional(event, "worker_id"),
        command_id=optional(event, "command_id"),
        created_at=optional_time(event, "created_at"),
    )


def record_from_message(event: common_pb2.Event) -> EventRecord:
    return EventRecord(
        event_id=event.event_id,
        event_type=event.event_type,
        node_name=event.node_name or None,
        status=event.status or None,
        context=jsonutil.loads(event.context_json),
        result=jsonutil.loads(event.result_json),
        meta=jsonutil.loads(event.meta_json),
        error=optional(event, "error"),
        command_id=optional(event, "command_id"),
        created_at=as_utc(event.created_at.ToDatetime()),
        parent_event_id=optional(event, "parent_event_id"),
    )


class CatalogClient:
    def __init__(self, stub: catalog_pb2_grpc.CatalogServiceStub) -> None:
        self._stub = stub

    async def resolve(
        self, *, path: str | None, catalog_id: int | None, version: int | None
    ) -> PlaybookEntry:
        request = catalog_pb2.GetResourceRequest()
        if catalog_id is not None:
            request.catalog_id = catalog_id
        if path is not None:
            request.path = path
        if version is not None:
            request.version = version
        entry = (await self._stub.GetResource(request, timeout=30)).entry
        return PlaybookEntry(
            catalog_id=entry.catalog_id,
            path=entry.path,
            version=entry.version,
            kind=entry.kind,
            document=jsonutil.loads(entry.payload_json),
        )


def _new_event_message(event: NewEvent, notification: Notification | None) -> events_pb2.NewEvent:
    message = events_pb2.NewEvent(
        event_type=event.event_type,
        node_name=event.node_name,
        node_type=event.node_type or "",
        status=event.status,
        context_json=jsonutil.dumps(event.context),
        result_json=jsonutil.dumps(event.result),
        meta_json=jsonutil.dumps(event.meta),
    )
    optional: dict[str, Any] = {
        "error": event.error,
        "command_id": event.command_id,
        "parent_event_id": event.parent_event_id,
        "idempotency_key": event.idempotency_key,
    }
    for name, value in optional.items():
        if value is not None:
            setattr(message, name, value)
    if notification is not None:
        message.notify.subject = notification.subject
        message.notify.payload_json = jsonutil.dumps(notification.payload)
    return message


# A pass's appends, a claim's, the reaper's: concurrent ones share one `AppendMany` per shard.
APPEND_LIMITS = Limits(items=64, size=4 * 1024 * 1024, in_flight=2)
APPEND_TIMEOUT_SECONDS = 30


class EventsClient:
    def __init__(self, events: Sharded[events_pb2_grpc.EventServiceStub]) -> None:
        self._events = events
        self._appends: Coalescer[
            events_pb2_grpc.EventServiceStub, events_pb2.AppendRequest, events_pb2.AppendItemResult
        ] = Coalescer(_append_many, _append_size, APPEND_LIMITS)

    async def append(
        self,
        execution_id: int,
        events: Sequence[NewEvent],
        *,
        catalog_id: int,
        parent_execution_id: int | None,
        notifications: Mapping[int, Notification],
        require_open: bool,
    ) -> Appended:
        request = events_pb2.AppendRequest(
            execution_id=execution_id,
            catalog_id=catalog_id,
            events=[_new_event_message(e, notifications.get(i)) for i, e in enumerate(events)],
            require_open=require_open,
        )
        if parent_execution_id is not None:
            request.parent_execution_id = parent_execution_id
        # Answered as its own Append would be: its result, or the error it alone failed with.
        result = await self._appends.submit(self._events.for_execution(execution_id), request)
        if result.HasField("error"):
            raise rpc_errors.from_item_error(result.error)
        stored = list(result.appended.stored)
        return Appended(
            event_ids=list(result.appended.event_ids),
            stored=[record_from_message(e) for e in stored],
            linked_to=stored[0].prev_event_id if stored and stored[0].HasField("prev_event_id") else None,
        )

    async def since(self, execution_id: int, after_event_id: int | None) -> list[EventRecord]:
        found: list[EventRecord] = []
        cursor = after_event_id
        while True:
            page = await self._page(execution_id, cursor, None, LOG_PAGE)
            found.extend(record_from_message(e) for e in page)
            if len(page) < LOG_PAGE:
                return found
            cursor = page[-1].event_id

    async def count(self, execution_id: int, event_type: str) -> int:
        request = events_pb2.ListEventsRequest(
            execution_id=execution_id, event_type=event_type, page=1, page_size=1
        )
        response = await self._events.for_execution(execution_id).ListEvents(request, timeout=30)
        return int(response.total)

    async def pages(self, execution_id: int, event_type: str) -> AsyncIterator[list[LogEvent]]:
        cursor: int | None = None
        while True:
            page = await self._page(execution_id, cursor, event_type, LOG_PAGE)
            if page:
                yield [log_event_from_message(e) for e in page]
            if len(page) < LOG_PAGE:
                return
            cursor = page[-1].event_id

    async def one(self, execution_id: int, event_id: int) -> LogEvent | None:
        page = await self._page(execution_id, event_id - 1, None, 1)
        if not page or page[0].event_id != event_id:
            return None
        return log_event_from_message(page[0])

    async def _page(
        self, execution_id: int, after_event_id: int | None, event_type: str | None, size: int
    ) -> list[common_pb2.Event]:
        request = events_pb2.ListEventsRequest(execution_id=execution_id, page=1, page_size=size)
        if after_event_id is not None:
            request.after_event_id = after_event_id
        if event_type is not None:
            request.event_type = event_type
        response = await self._events.for_execution(execution_id).ListEvents(request, timeout=30)
        return list(response.events)


class BusPublisher:
    """Command notifications straight onto JetStream (the reaper's re-announcements)."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def publish(self, notification: Notification, message_id: str) -> None:
        await self._js.publish(
            notification.subject,
            jsonutil.dumps(notification.payload),
            headers={"Nats-Msg-Id": message_id},
            timeout=5.0,
        )


class ShardFamily:
    """`FamilyPort` over this shard's store and the other shards' ExecutionService."""

    def __init__(
        self,
        store: ExecutionStore,
        peers: Sharded[execution_pb2_grpc.ExecutionServiceStub] | None,
        shard_index: int,
    ) -> None:
        self._store = store
        # None with one shard: every family lives in this shard's database.
        self._peers = peers
        self._index = shard_index

    async def children(self, parent_ids: Sequence[int]) -> list[tuple[int, bool]]:
        found = await self._store.children(parent_ids)
        if self._peers is not None:
            wanted = execution_pb2.ChildrenRequest(parent_execution_ids=parent_ids)
            for index, stub in enumerate(self._peers.all()):
                if index != self._index:
                    answer = await stub.Children(wanted, timeout=30)
                    found += [(child.execution_id, child.running) for child in answer.children]
        return sorted(found)

    async def cancel_member(self, execution_id: int, reason: str, cascade_from: int) -> bool:
        if self._peers is None:
            raise ValueError(f"execution {execution_id}: one shard has no other shard to ask")
        answer = await self._peers.for_execution(execution_id).Cancel(
            execution_pb2.CancelRequest(execution_id=execution_id, reason=reason, cascade_from=cascade_from),
            timeout=30,
        )
        return execution_id in answer.cancelled_executions


async def _append_many(
    stub: events_pb2_grpc.EventServiceStub, appends: list[events_pb2.AppendRequest]
) -> list[events_pb2.AppendItemResult]:
    response = await stub.AppendMany(
        events_pb2.AppendManyRequest(appends=appends), timeout=APPEND_TIMEOUT_SECONDS
    )
    return list(response.results)


def _append_size(request: events_pb2.AppendRequest) -> int:
    return request.ByteSize()
