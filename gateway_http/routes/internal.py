"""The internal API (http-api.md §12.1 to §12.5, plus the dead letters) → OutboxService and EventService.

Every route here is `internal`: the app puts it behind the token gate (`gateway_http/internal_gate.py`).
There is one outbox service per shard, each over its shard's database: counts are summed, marks
and requeues go to every shard (a row lives on one; the others match nothing), claims fill the
limit shard by shard, and dead letters are merged in `outbox_id` order.

Dead letters (a project addition; the references have no DEAD state):
- `GET /api/internal/outbox/dead?limit=100&after=<outbox_id>`: DEAD rows in `outbox_id` order
  after the cursor, `{"rows": [...], "dead": <all dead rows>, "next_after": <cursor or null>}`;
- `POST /api/internal/outbox/dead/requeue` with `{"outbox_ids": [...]}` or `{"all": true}`:
  those rows back to PENDING with attempts 0, `{"requeued": n}`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from noetl.v1 import events_pb2, events_pb2_grpc, outbox_pb2, outbox_pb2_grpc
from starlette.requests import Request
from starlette.responses import Response

from gateway_http.encoding import dumps, json_response
from gateway_http.formatting import timestamp
from gateway_http.openapi.build import BACKEND, BODY, Operation, array, json_body, obj, ok, query_param, ref
from gateway_http.routes import Endpoint, set_present
from gateway_http.validation import INT32_MAX, Fields, Problems, read_json
from kernel.grpc_client import Sharded

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _clamp(limit: int) -> int:
    return max(1, min(MAX_LIMIT, limit))


def _outbox_row(row: outbox_pb2.OutboxRow) -> dict[str, Any]:
    return {
        "outbox_id": row.outbox_id,
        "event_id": row.event_id,
        "execution_id": row.execution_id,
        "subject": row.subject,
        "payload": json.loads(row.payload_json) if row.payload_json else None,
        "payload_codec": row.payload_codec,
        "attempts": row.attempts,
    }


def _dead_row(row: outbox_pb2.DeadRow) -> dict[str, Any]:
    return {
        "outbox_id": row.outbox_id,
        "event_id": row.event_id,
        "execution_id": row.execution_id,
        "subject": row.subject,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "created_at": timestamp(row.created_at) if row.HasField("created_at") else None,
        "dead_at": timestamp(row.dead_at) if row.HasField("dead_at") else None,
    }


class InternalRoutes:
    def __init__(
        self,
        outbox: Sharded[outbox_pb2_grpc.OutboxServiceStub],
        events: Sharded[events_pb2_grpc.EventServiceStub],
        rpc_timeout: float,
    ) -> None:
        self._outbox = outbox
        self._events = events
        self._timeout = rpc_timeout

    def endpoints(self) -> list[Endpoint]:
        int64 = {"type": "integer", "format": "int64"}
        positive = {"type": "integer", "minimum": 1, "maximum": INT32_MAX}
        return [
            Endpoint(
                "/internal/outbox/claim",
                self.claim,
                ("POST",),
                Operation(
                    "outbox_claim",
                    "internal",
                    "Claim due outbox rows (limit clamped to 1..1000)",
                    ok("The claimed rows", ref("OutboxClaim")),
                    (*BODY, *BACKEND),
                    body=json_body(obj({"limit": {**int64, "default": DEFAULT_LIMIT}}, []), required=False),
                ),
                internal=True,
            ),
            Endpoint(
                "/internal/outbox/mark-published",
                self.mark_published,
                ("POST",),
                Operation(
                    "outbox_mark_published",
                    "internal",
                    "Mark outbox rows published (idempotent)",
                    ok("Rows affected", obj({"marked": {"type": "integer"}})),
                    (*BODY, *BACKEND),
                    body=json_body(obj({"outbox_ids": array(ref("IdInput"), minItems=1)})),
                ),
                internal=True,
            ),
            Endpoint(
                "/internal/outbox/mark-failed",
                self.mark_failed,
                ("POST",),
                Operation(
                    "outbox_mark_failed",
                    "internal",
                    "Record a failed publish: backoff, or DEAD at the attempt limit",
                    ok(
                        "The backoff in seconds (0 when the row is now DEAD)",
                        obj({"marked": {"type": "boolean"}, "available_at_in": {"type": "integer"}}),
                    ),
                    (*BODY, *BACKEND),
                    body=json_body(
                        obj(
                            {
                                "outbox_id": ref("IdInput"),
                                "error": {
                                    "type": "string",
                                    "minLength": 1,
                                    "description": "Truncated to 2000 chars",
                                },
                                "attempts": {**positive, "default": 1},
                                "max_delay_seconds": {**positive, "default": 300},
                            },
                            ["outbox_id", "error"],
                        )
                    ),
                ),
                internal=True,
            ),
            Endpoint(
                "/internal/outbox/pending-count",
                self.pending_count,
                ("GET",),
                Operation(
                    "outbox_pending_count",
                    "internal",
                    "Rows waiting to be published",
                    ok("The count", obj({"pending": {"type": "integer"}})),
                    BACKEND,
                ),
                internal=True,
            ),
            Endpoint(
                "/internal/outbox/dead",
                self.list_dead,
                ("GET",),
                Operation(
                    "outbox_dead",
                    "internal",
                    "Dead letters in `outbox_id` order, one page after a cursor",
                    ok("One page", ref("DeadLetterPage")),
                    ("422", *BACKEND),
                    parameters=(
                        query_param("limit", {**int64, "default": DEFAULT_LIMIT}, "Clamped to 1..1000"),
                        query_param(
                            "after",
                            {**int64, "minimum": 0, "default": 0},
                            "Cursor: the last `outbox_id` seen",
                        ),
                    ),
                ),
                internal=True,
            ),
            Endpoint(
                "/internal/outbox/dead/requeue",
                self.requeue,
                ("POST",),
                Operation(
                    "outbox_dead_requeue",
                    "internal",
                    "Move dead letters back to PENDING (`outbox_ids` or `all: true`)",
                    ok("Rows requeued", obj({"requeued": {"type": "integer"}})),
                    (*BODY, *BACKEND),
                    body=json_body(
                        obj({"outbox_ids": array(ref("IdInput"), minItems=1), "all": {"type": "boolean"}}, [])
                    ),
                ),
                internal=True,
            ),
            Endpoint(
                "/internal/events/project",
                self.project,
                ("POST",),
                Operation(
                    "events_project",
                    "internal",
                    "Project event envelopes into the log (idempotent)",
                    ok("Counts", obj({"projected": {"type": "integer"}, "duplicates": {"type": "integer"}})),
                    (*BODY, "500", *BACKEND),
                    description="A batch the database refuses answers 500 `events/project failed: <e>`.",
                    body=json_body(obj({"events": array(ref("EventEnvelope"), minItems=1)})),
                ),
                internal=True,
            ),
        ]

    async def claim(self, request: Request) -> Response:
        """§12.1 → `ClaimRows`. `limit` is a body field (a query parameter is ignored), clamped to
        1..1000 rather than refused; an empty body claims the default 100."""
        problems = Problems()
        fields = problems.body(await read_json(request, required=False))
        limit = fields.number("limit", DEFAULT_LIMIT, minimum=-(2**63))
        problems.check()
        wanted = _clamp(limit)
        rows: list[dict[str, Any]] = []
        for shard in self._outbox.all():
            if len(rows) >= wanted:
                break
            claimed = await shard.ClaimRows(
                outbox_pb2.ClaimRowsRequest(limit=wanted - len(rows)), timeout=self._timeout
            )
            rows.extend(_outbox_row(row) for row in claimed.rows)
        return json_response({"rows": rows, "claimed": len(rows)})

    async def mark_published(self, request: Request) -> Response:
        """§12.2 → `MarkPublished`; an empty `outbox_ids` is 422."""
        problems = Problems()
        outbox_ids = problems.body(await read_json(request)).ids("outbox_ids")
        problems.check()
        wanted = outbox_pb2.MarkPublishedRequest(outbox_ids=outbox_ids)
        marked = await asyncio.gather(
            *(shard.MarkPublished(wanted, timeout=self._timeout) for shard in self._outbox.all())
        )
        return json_response({"marked": sum(answer.marked for answer in marked)})

    async def mark_failed(self, request: Request) -> Response:
        """§12.3 → `MarkFailed`: the backoff in seconds, 0 when the row is now DEAD."""
        problems = Problems()
        fields = problems.body(await read_json(request))
        outbox_id = fields.required_identifier("outbox_id")
        error = fields.non_blank_text("error")
        attempts = fields.number("attempts", 1, minimum=1, maximum=INT32_MAX)
        max_delay = fields.number("max_delay_seconds", 300, minimum=1, maximum=INT32_MAX)
        problems.check()
        wanted = outbox_pb2.MarkFailedRequest(
            outbox_id=outbox_id, error=error, attempts=attempts, max_delay_seconds=max_delay
        )
        answers = await asyncio.gather(
            *(shard.MarkFailed(wanted, timeout=self._timeout) for shard in self._outbox.all())
        )
        # The shard holding the row answers for it; when none does, any answer says "not marked".
        failed = next((answer for answer in answers if answer.marked), answers[0])
        return json_response({"marked": failed.marked, "available_at_in": failed.available_at_in})

    async def pending_count(self, request: Request) -> Response:
        """§12.4 → `PendingCount`."""
        counted = await asyncio.gather(
            *(
                shard.PendingCount(outbox_pb2.PendingCountRequest(), timeout=self._timeout)
                for shard in self._outbox.all()
            )
        )
        return json_response({"pending": sum(answer.pending for answer in counted)})

    async def list_dead(self, request: Request) -> Response:
        """→ `ListDead`: one page of dead letters; `limit` clamped to 1..1000, `after` a cursor."""
        problems = Problems()
        query = problems.query(request)
        limit = query.number("limit", DEFAULT_LIMIT, minimum=-(2**63))
        after = query.number("after", 0, minimum=0)
        problems.check()
        wanted = outbox_pb2.ListDeadRequest(limit=_clamp(limit), after_outbox_id=after)
        pages = await asyncio.gather(
            *(shard.ListDead(wanted, timeout=self._timeout) for shard in self._outbox.all())
        )
        merged = sorted((row for page in pages for row in page.rows), key=lambda row: row.outbox_id)
        rows = merged[: wanted.limit]
        more = len(merged) > len(rows) or any(page.HasField("next_after") for page in pages)
        return json_response(
            {
                "rows": [_dead_row(row) for row in rows],
                "dead": sum(page.dead for page in pages),
                "next_after": rows[-1].outbox_id if more and rows else None,
            }
        )

    async def requeue(self, request: Request) -> Response:
        """→ `Requeue`: exactly one of a non-empty `outbox_ids` or `"all": true`."""
        problems = Problems()
        fields = problems.body(await read_json(request))
        every = fields.flag("all", False)
        outbox_ids = fields.ids("outbox_ids") if fields.has("outbox_ids") or not every else []
        if every and outbox_ids:
            fields.value_error("Give either 'outbox_ids' or 'all', not both")
        problems.check()
        wanted = outbox_pb2.RequeueRequest(outbox_ids=outbox_ids, all=every)
        requeued = await asyncio.gather(
            *(shard.Requeue(wanted, timeout=self._timeout) for shard in self._outbox.all())
        )
        return json_response({"requeued": sum(answer.requeued for answer in requeued)})

    async def project(self, request: Request) -> Response:
        """§12.5 → `Project` on each owning events shard; duplicates are envelopes already stored.

        `context` wins over `payload` (the reference stores only `context`); `created_at` is
        `timestamp`, else `created_at`, else the insert time. A timestamp that does not parse is
        422 here (the reference fails it with 500 in the database).
        """
        problems = Problems()
        items = problems.body(await read_json(request)).objects("events")
        envelopes = [_envelope(item) for item in items]
        problems.check()
        by_shard: dict[int, tuple[events_pb2_grpc.EventServiceStub, list[events_pb2.ProjectedEvent]]] = {}
        for envelope in envelopes:
            stub = self._events.for_execution(envelope.execution_id)
            by_shard.setdefault(id(stub), (stub, []))[1].append(envelope)
        projected = duplicates = 0
        for stub, batch in by_shard.values():
            answer = await stub.Project(events_pb2.ProjectRequest(events=batch), timeout=self._timeout)
            projected += answer.projected
            duplicates += answer.duplicates
        return json_response({"projected": projected, "duplicates": duplicates})


def _envelope(item: Fields) -> events_pb2.ProjectedEvent:
    event = events_pb2.ProjectedEvent(
        event_id=item.required_identifier("event_id"),
        execution_id=item.identifier("execution_id") or 0,
        catalog_id=item.identifier("catalog_id") or 0,
    )
    context = item.mapping("context")
    payload = item.mapping("payload")
    result = item.mapping("result")
    meta = item.mapping("meta")
    trace_component = item.text("trace_component")
    created_at = item.timestamp("timestamp") or item.timestamp("created_at")
    set_present(
        event,
        parent_event_id=item.identifier("parent_event_id"),
        prev_event_id=item.identifier("prev_event_id"),
        event_type=item.text("event_type"),
        node_id=item.text("node_id"),
        node_name=item.text("node_name"),
        node_type=item.text("node_type"),
        status=item.text("status"),
        duration=item.real("duration"),
        error=item.text("error"),
        stack_trace=item.text("stack_trace"),
    )
    if created_at is not None:
        event.created_at.FromDatetime(created_at)
    body = context if context is not None else payload
    event.context_json = b"" if body is None else dumps(body)
    event.result_json = b"" if result is None else dumps(result)
    event.meta_json = b"" if meta is None else dumps(meta)
    event.trace_component_json = b"" if trace_component is None else dumps(trace_component)
    return event
