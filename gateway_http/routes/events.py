"""Event ingest and reads → EventService (http-api.md §5).

`POST /api/events` and `/events/batch` go to the execution's shard. A batch record and an event
are addressed by an id alone, which does not say which shard holds it, so their reads ask the
shards in order until one knows it (one call with a single shard).
"""

from __future__ import annotations

from typing import Any

from noetl.v1 import events_pb2, events_pb2_grpc
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from gateway_http.coalescing import EmitCoalescer
from gateway_http.encoding import dumps, json_response
from gateway_http.formatting import timestamp
from gateway_http.openapi.build import (
    BACKEND,
    BODY,
    Operation,
    header_param,
    json_body,
    nullable,
    ok,
    path_param,
    ref,
)
from gateway_http.redaction import redact
from gateway_http.routes import Endpoint, first_found, set_present
from gateway_http.validation import Fields, Problems, parse_id, read_json
from kernel import jsonutil
from kernel.errors import NotFound, Unavailable
from kernel.grpc_client import Sharded
from kernel.wire import optional

# Events are stored before the answer, so nothing ever waits in a queue.
QUEUE_DEPTH = 0


class EventRoutes:
    def __init__(
        self,
        events: Sharded[events_pb2_grpc.EventServiceStub],
        rpc_timeout: float,
        *,
        display_redaction: bool,
    ) -> None:
        self._events = events
        self._timeout = rpc_timeout
        self._display_redaction = display_redaction
        self._coalescer = EmitCoalescer(events, rpc_timeout)

    def endpoints(self) -> list[Endpoint]:
        replay = "A replay with the same key returns the first answer with `duplicate: true`"
        return [
            Endpoint(
                "/events",
                self.emit,
                ("POST",),
                Operation(
                    "events_emit",
                    "events",
                    "Ingest one worker event",
                    ok("Stored (or the existing event of a repeat)", ref("EmitResponse")),
                    (*BODY, "404", "409", *BACKEND),
                    description=(
                        'Payload checks answer 422 `{"detail": "<message>"}`; an execution without'
                        " events 404 `Execution <id> not found`; a `command.claimed` from another worker"
                        " 409."
                    ),
                    body=json_body(ref("WorkerEvent")),
                ),
            ),
            Endpoint(
                "/events/batch",
                self.emit_batch,
                ("POST",),
                Operation(
                    "events_batch",
                    "events",
                    "Ingest up to 256 worker events of one execution in one transaction",
                    ok("Accepted", ref("EventBatchResponse"), "202"),
                    (*BODY, "404", "409", *BACKEND),
                    description=(
                        "A replay of an `Idempotency-Key` with the same events answers the recorded batch"
                        " (`duplicate: true`); with other events it is 409 naming the key, and nothing is stored."
                    ),
                    parameters=(
                        header_param("Idempotency-Key", replay),
                        header_param("X-Idempotency-Key", replay),
                    ),
                    body=json_body(ref("EventBatchRequest")),
                ),
            ),
            Endpoint(
                "/events/batch/{request_id}/status",
                self.batch_status,
                ("GET",),
                Operation(
                    "events_batch_status",
                    "events",
                    "What a recorded events batch stored",
                    ok("The batch", ref("EventBatchStatus")),
                    ("404", "422", *BACKEND),
                    parameters=(
                        path_param(
                            "request_id", "The batch's `request_id`", {"type": "string", "minLength": 1}
                        ),
                    ),
                ),
            ),
            Endpoint(
                "/events/{event_id}/result",
                self.result,
                ("GET",),
                Operation(
                    "event_result",
                    "events",
                    "The stored `result` of one event (null when it has none)",
                    ok("The result object, or null", nullable({"type": "object"})),
                    ("404", "422", *BACKEND),
                    description=(
                        "Shown through the display filter of data-model.md §9.10 (values under secret-looking"
                        " keys and secret-looking strings read `[REDACTED]`) unless `NOETL_DISPLAY_REDACTION=false`;"
                        " the stored result itself is never altered."
                    ),
                    parameters=(path_param("event_id", "Event id"),),
                ),
            ),
        ]

    async def emit(self, request: Request) -> Response:
        """Alias winners as in the reference: `step` over `node_name`, `name` over `event_type`,
        `payload` over `context`. `event_id`, `status` and `created_at` are ignored: the service
        mints, derives and stamps them. Payload rules (`_internal_data`, `result` keys) are the
        service's and answer 422 `{"detail": "..."}`.
        """
        problems = Problems()
        fields = problems.body(await read_json(request))
        execution_id = fields.required_identifier("execution_id")
        step = fields.required_text("step", "node_name")
        event_type = fields.required_text("name", "event_type")
        payload = fields.mapping("payload", "context")
        meta = fields.mapping("meta")
        worker_id = fields.text("worker_id")
        actionable = fields.flag("actionable", True)
        informative = fields.flag("informative", True)
        problems.check()
        event = events_pb2.WorkerEvent(
            execution_id=execution_id,
            step=step,
            event_type=event_type,
            payload_json=dumps({} if payload is None else payload),
            meta_json=b"" if meta is None else dumps(meta),
            actionable=actionable,
            informative=informative,
        )
        set_present(event, worker_id=worker_id)
        # Concurrent requests share one EmitMany call; each is still answered on its own.
        emitted = await self._coalescer.emit(event)
        return json_response(
            {"status": "ok", "event_id": emitted.event_id, "commands_generated": emitted.commands_generated}
        )

    async def emit_batch(self, request: Request) -> Response:
        """§5.2 → `EmitBatch`: 202 once every event is stored and orchestration has run.

        Items take the aliases of §5.1, but `actionable` defaults to false. The limits (256 events,
        2 MiB of payloads) and the payload rules are the service's and answer 422 `{"detail": "..."}`
        naming the field. An events service that cannot be reached or does not answer in time is
        503 `queue_unavailable`: the batch may or may not be stored, and a retry with the same
        idempotency key is safe either way.
        """
        problems = Problems()
        fields = problems.body(await read_json(request))
        execution_id = fields.required_identifier("execution_id")
        worker_id = fields.text("worker_id")
        catalog_id = fields.identifier("catalog_id")
        events = [_batch_item(item) for item in fields.objects("events")]
        problems.check()
        for event in events:
            event.execution_id = execution_id
            set_present(event, worker_id=worker_id)
        key = _idempotency_key(request.headers)
        emit = events_pb2.EmitBatchRequest(execution_id=execution_id, events=events)
        set_present(emit, catalog_id=catalog_id, idempotency_key=key)
        try:
            batch = await self._events.for_execution(execution_id).EmitBatch(emit, timeout=self._timeout)
        except Unavailable as exc:
            if isinstance(exc.detail, dict):  # the service's own shape (db_unavailable) passes as it is
                raise
            detail = {"code": "queue_unavailable", "message": "Event service unavailable; retry shortly"}
            raise Unavailable(detail, retry_after=exc.retry_after) from exc
        return json_response(
            {
                "status": "accepted",
                "request_id": str(batch.request_id),
                "event_ids": list(batch.event_ids),
                "commands_generated": batch.commands_generated,
                "queue_depth": QUEUE_DEPTH,
                "duplicate": batch.duplicate,
                "idempotency_key": key,
            },
            202,
        )

    async def batch_status(self, request: Request) -> Response:
        """The record of an accepted batch → `GetBatch` (docs/decisions.md: event batches).

        `request_id` is a string on the wire; one that is not a number was never minted here (404).
        """
        raw = request.path_params["request_id"]
        request_id = parse_id(raw)
        missing = f"Batch request {raw} not found"
        if request_id is None:
            raise NotFound(missing)
        query = events_pb2.GetBatchRequest(request_id=request_id)
        found = await first_found(
            self._events.all(), lambda stub: stub.GetBatch(query, timeout=self._timeout), missing
        )
        return json_response(_batch_body(found.batch))

    async def result(self, request: Request) -> Response:
        """§5.3 → `GetEventResult`: the stored `result` (through the display filter when it is on),
        or `null`."""
        problems = Problems()
        event_id = problems.path_id(request, "event_id")
        problems.check()
        query = events_pb2.GetEventResultRequest(event_id=event_id)
        found = await first_found(
            self._events.all(),
            lambda stub: stub.GetEventResult(query, timeout=self._timeout),
            f"Event {event_id} not found",
        )
        result = jsonutil.loads(found.result_json)
        return json_response(redact(result) if self._display_redaction else result)


def _batch_item(item: Fields) -> events_pb2.WorkerEvent:
    """One item's fields; the batch's `execution_id` and `worker_id` are set once all parsed."""
    step = item.required_text("step", "node_name")
    event_type = item.required_text("name", "event_type")
    payload = item.mapping("payload", "context")
    meta = item.mapping("meta")
    return events_pb2.WorkerEvent(
        step=step,
        event_type=event_type,
        payload_json=dumps({} if payload is None else payload),
        meta_json=b"" if meta is None else dumps(meta),
        actionable=item.flag("actionable", False),
        informative=item.flag("informative", True),
    )


def _idempotency_key(headers: Headers) -> str | None:
    """`Idempotency-Key`, else `X-Idempotency-Key`; a blank header is no key."""
    for name in ("idempotency-key", "x-idempotency-key"):
        value = headers.get(name, "").strip()
        if value:
            return value
    return None


def _batch_body(batch: events_pb2.EventBatch) -> dict[str, Any]:
    return {
        "request_id": str(batch.request_id),
        "execution_id": str(batch.execution_id),
        "state": batch.state,
        "event_ids": list(batch.event_ids),
        "commands_generated": optional(batch, "commands_generated"),
        "idempotency_key": optional(batch, "idempotency_key"),
        "error": optional(batch, "error"),
        "created_at": timestamp(batch.created_at),
        "updated_at": timestamp(batch.updated_at),
    }
