"""Conversions between the event log's records and protobuf messages (adapters only)."""

from __future__ import annotations

from noetl.v1 import common_pb2, events_pb2

from kernel.errors import InvalidArgument
from kernel.wire import json_field, optional, optional_time, timestamp
from language.event_types import WORKER_IDEMPOTENT, canonical_event_type
from services.events.batches import EventBatch
from services.events.chain import Draft, Notify, StoredEvent
from services.events.projection import Envelope


def event_message(event: StoredEvent) -> common_pb2.Event:
    message = common_pb2.Event(
        event_id=event.event_id,
        execution_id=event.execution_id,
        catalog_id=event.catalog_id,
        event_type=event.event_type,
        node_id=event.node_id or "",
        node_name=event.node_name or "",
        node_type=event.node_type or "",
        status=event.status or "",
        created_at=timestamp(event.created_at),
        context_json=(event.context or "").encode(),
        result_json=(event.result or "").encode(),
        meta_json=(event.meta or "").encode(),
    )
    if event.parent_event_id is not None:
        message.parent_event_id = event.parent_event_id
    if event.prev_event_id is not None:
        message.prev_event_id = event.prev_event_id
    if event.parent_execution_id is not None:
        message.parent_execution_id = event.parent_execution_id
    if event.error is not None:
        message.error = event.error
    if event.worker_id is not None:
        message.worker_id = event.worker_id
    if event.command_id is not None:
        message.command_id = event.command_id
    if event.duration is not None:
        message.duration = event.duration
    return message


def batch_message(batch: EventBatch) -> events_pb2.EventBatch:
    message = events_pb2.EventBatch(
        request_id=batch.request_id,
        execution_id=batch.execution_id,
        event_ids=batch.event_ids,
        state=batch.state,
        created_at=timestamp(batch.created_at),
        updated_at=timestamp(batch.updated_at),
    )
    if batch.idempotency_key is not None:
        message.idempotency_key = batch.idempotency_key
    if batch.commands_generated is not None:
        message.commands_generated = batch.commands_generated
    if batch.error is not None:
        message.error = batch.error
    return message


def draft_from_message(event: events_pb2.NewEvent) -> Draft:
    """Raises InvalidArgument for a draft without type/node or with malformed JSON."""
    if not event.event_type or not event.node_name:
        raise InvalidArgument("event_type and node_name are required")
    meta = json_field(event.meta_json, "meta_json")
    if meta is not None and not isinstance(meta, dict):
        raise InvalidArgument("meta_json must be a JSON object")
    notify = None
    if event.HasField("notify") and event.notify.subject:
        payload = json_field(event.notify.payload_json, "notify.payload_json")
        if not isinstance(payload, dict):
            raise InvalidArgument("notify.payload_json must be a JSON object")
        notify = Notify(subject=event.notify.subject, payload=payload)
    kind = canonical_event_type(event.event_type)
    return Draft(
        event_type=kind,
        node_name=event.node_name,
        status=event.status,
        context=_text(event.context_json, "context_json"),
        result=_text(event.result_json, "result_json"),
        meta=meta,
        node_type=event.node_type or None,
        error=optional(event, "error"),
        command_id=optional(event, "command_id"),
        parent_event_id=optional(event, "parent_event_id"),
        idempotency_key=optional(event, "idempotency_key"),
        worker_id=optional(event, "worker_id"),
        explicit_id=optional(event, "event_id"),
        worker_dedupe=kind in WORKER_IDEMPOTENT,
        notify=notify,
    )


def envelope_from_message(event: events_pb2.ProjectedEvent) -> Envelope:
    """Raises InvalidArgument for malformed JSON."""
    return Envelope(
        event_id=event.event_id,
        execution_id=event.execution_id,
        catalog_id=event.catalog_id,
        parent_event_id=optional(event, "parent_event_id"),
        prev_event_id=optional(event, "prev_event_id"),
        event_type=optional(event, "event_type"),
        node_id=optional(event, "node_id"),
        node_name=optional(event, "node_name"),
        node_type=optional(event, "node_type"),
        status=optional(event, "status"),
        duration=optional(event, "duration"),
        created_at=optional_time(event, "created_at"),
        context=_text(event.context_json, "context_json"),
        result=_text(event.result_json, "result_json"),
        meta=_text(event.meta_json, "meta_json"),
        error=optional(event, "error"),
        stack_trace=optional(event, "stack_trace"),
        trace_component=_text(event.trace_component_json, "trace_component_json"),
    )


def _text(raw: bytes, field: str) -> str | None:
    """Validates and keeps JSON as text: the store writes it into jsonb untouched."""
    if not raw:
        return None
    json_field(raw, field)
    return raw.decode()
