"""Execution routes → ExecutionService and EventService (http-api.md §4.1 to §4.12)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from noetl.v1 import events_pb2, events_pb2_grpc, execution_pb2
from starlette.requests import Request
from starlette.responses import Response

from gateway_http.clients import ExecutionShard
from gateway_http.encoding import dumps, json_response
from gateway_http.openapi.build import (
    BACKEND,
    BODY,
    EXECUTION_ID,
    Operation,
    array,
    json_body,
    obj,
    ok,
    query_param,
    ref,
)
from gateway_http.routes import Endpoint, set_present
from gateway_http.validation import INT32_MAX, NOT_AN_OBJECT, Fields, Problems, parse_id, read_json
from gateway_http.views import event_object, execution_entry, pagination, raw_event_row, status_body
from kernel.errors import NotFound, Unprocessable
from kernel.grpc_client import Sharded
from kernel.timeutil import utcnow

MAX_LIST_OFFSET = 5000
MAX_BATCH_EXECUTIONS = 1000


class ExecutionRoutes:
    def __init__(
        self,
        execution: Sharded[ExecutionShard],
        events: Sharded[events_pb2_grpc.EventServiceStub],
        rpc_timeout: float,
    ) -> None:
        self._execution = execution
        self._events = events
        self._timeout = rpc_timeout

    def endpoints(self) -> list[Endpoint]:
        paging = (
            query_param(
                "page", {"type": "integer", "minimum": 1, "maximum": INT32_MAX, "default": 1}, "Page number"
            ),
            query_param(
                "page_size",
                {"type": "integer", "minimum": 10, "maximum": 500, "default": 100},
                "Events per page",
            ),
            query_param("since_event_id", ref("IdText"), "Only events with a larger `event_id`"),
            query_param("event_type", {"type": "string"}, "Only events of this type"),
        )
        by_id = ("404", "422", *BACKEND)
        return [
            Endpoint(
                "/execute",
                self.execute,
                ("POST",),
                Operation(
                    "execute",
                    "executions",
                    "Start an execution of a catalog entry",
                    ok("Started", ref("ExecuteResponse")),
                    (*BODY, "404", "500", *BACKEND),
                    description=(
                        "Neither `path` nor `catalog_id`: 422 `Value error, Either 'path' or 'catalog_id' must"
                        " be provided`. Unknown entry: 404 `Executable catalog entry not found: <path>`. A"
                        " playbook that does not deserialize: 400; one that is semantically invalid, or a kind"
                        ' that is not executable: 422 `{"detail": "<message>"}`.'
                    ),
                    body=json_body(ref("ExecuteRequest")),
                ),
            ),
            Endpoint(
                "/execute/batch",
                self.execute_batch,
                ("POST",),
                Operation(
                    "execute_batch",
                    "executions",
                    "Start up to 1000 executions, each independently",
                    ok("One result per item, in order", ref("ExecuteBatchResponse")),
                    (*BODY, *BACKEND),
                    body=json_body(
                        obj(
                            {
                                "executions": array(
                                    ref("ExecuteRequest"), minItems=1, maxItems=MAX_BATCH_EXECUTIONS
                                )
                            }
                        )
                    ),
                ),
            ),
            Endpoint(
                "/executions",
                self.listing,
                ("GET",),
                Operation(
                    "executions_list",
                    "executions",
                    "Executions, newest start first (a bare JSON array)",
                    ok("One page of executions", array(ref("ExecutionEntry"))),
                    ("422", *BACKEND),
                    description="An offset `(page-1)·page_size` above 5000 answers 422.",
                    parameters=(
                        query_param("page", {"type": "integer", "minimum": 1, "default": 1}, "Page number"),
                        query_param("page_size", {"type": "integer", "default": 100}, "Clamped to 1..200"),
                    ),
                ),
            ),
            Endpoint(
                "/executions/cleanup",
                self.cleanup,
                ("POST",),
                Operation(
                    "executions_cleanup",
                    "executions",
                    "Cancel executions stuck without a terminal event",
                    ok("What was (or would be) cancelled", ref("CleanupResponse")),
                    (*BODY, *BACKEND),
                    body=json_body(
                        obj(
                            {
                                "older_than_minutes": {"type": "integer", "minimum": 1, "default": 5},
                                "dry_run": {"type": "boolean", "default": False},
                            },
                            [],
                        ),
                        required=False,
                    ),
                ),
            ),
            Endpoint(
                "/executions/{execution_id}/events",
                self.raw_events,
                ("GET",),
                Operation(
                    "execution_events",
                    "executions",
                    "The raw event rows of an execution, newest first",
                    ok("One page of rows", ref("RawEventPage")),
                    by_id,
                    parameters=(EXECUTION_ID, *paging),
                ),
            ),
            Endpoint(
                "/executions/{execution_id}",
                self.detail,
                ("GET",),
                Operation(
                    "execution_detail",
                    "executions",
                    "One execution with a page of its events, newest first",
                    ok("The execution", ref("ExecutionDetail")),
                    by_id,
                    parameters=(
                        EXECUTION_ID,
                        *paging,
                        query_param(
                            "include_events", {"type": "boolean", "default": True}, "false: no events"
                        ),
                    ),
                ),
            ),
            Endpoint(
                "/executions/{execution_id}/status",
                self.status,
                ("GET",),
                Operation(
                    "execution_status",
                    "executions",
                    "Progress and variables of an execution",
                    ok("The status", ref("ExecutionStatus")),
                    by_id,
                    description="An unknown or non-numeric id answers 404 `Execution not found`.",
                    parameters=(
                        EXECUTION_ID,
                        query_param(
                            "full", {"type": "boolean", "default": False}, "true: variables uncompacted"
                        ),
                    ),
                ),
            ),
            Endpoint(
                "/executions/{execution_id}/cancel",
                self.cancel,
                ("POST",),
                Operation(
                    "execution_cancel",
                    "executions",
                    "Cancel an execution and, with `cascade`, its descendants",
                    ok("Cancelled, or already completed", ref("CancelResponse")),
                    (*BODY, "404", *BACKEND),
                    parameters=(EXECUTION_ID,),
                    body=json_body(
                        obj(
                            {
                                "reason": {"type": "string", "default": "User requested cancellation"},
                                "cascade": {"type": "boolean", "default": True},
                            },
                            [],
                        ),
                        required=False,
                    ),
                ),
            ),
            Endpoint(
                "/executions/{execution_id}/cancellation-check",
                self.cancellation_check,
                ("GET",),
                Operation(
                    "execution_cancellation_check",
                    "executions",
                    "Whether an execution was cancelled or has ended",
                    ok("The check", ref("CancellationCheck")),
                    by_id,
                    parameters=(EXECUTION_ID,),
                ),
            ),
            Endpoint(
                "/executions/{execution_id}/finalize",
                self.finalize,
                ("POST",),
                Operation(
                    "execution_finalize",
                    "executions",
                    "Force a terminal state (always 200; the outcome is in `status`)",
                    ok("finalized, already_completed or not_found", ref("FinalizeResponse")),
                    (*BODY, *BACKEND),
                    parameters=(EXECUTION_ID,),
                    body=json_body(
                        obj({"reason": {"type": "string", "default": "Abandoned or timed out"}}, []),
                        required=False,
                    ),
                ),
            ),
            Endpoint(
                "/executions/{execution_id}/rerun",
                self.rerun,
                ("POST",),
                Operation(
                    "execution_rerun",
                    "executions",
                    "Start a new execution of the same catalog entry",
                    ok("Started", ref("ExecuteResponse")),
                    (*BODY, "404", *BACKEND),
                    parameters=(EXECUTION_ID,),
                    body=json_body(
                        obj(
                            {
                                "workload": {"type": "object"},
                                "payload": {"type": "object", "description": "Alias of `workload`"},
                                "resource_kind": {"type": "string"},
                            },
                            [],
                        ),
                        required=False,
                    ),
                ),
            ),
        ]

    async def execute(self, request: Request) -> Response:
        """§4.1 → `Start` on the next shard in turn, which mints an id it owns (docs/sharding.md).

        `workload` wins over
        its alias `payload`; the service answers 404/400/422 for unknown, unparseable or
        invalid playbooks and for non-executable kinds.
        """
        problems = Problems()
        start = _start_request(problems.body(await read_json(request)))
        problems.check()
        started = await self._execution.for_new_execution().executions.Start(start, timeout=self._timeout)
        return json_response(
            {
                "execution_id": str(started.execution_id),
                "status": "started",
                "commands_generated": started.commands_generated,
            }
        )

    async def execute_batch(self, request: Request) -> Response:
        """§4.2 → items dealt to the shards in turn, one `StartBatch` per shard, answered in item order.

        Every item is read as a §4.1 body; a malformed one fails the whole request with 422 (its
        `loc` names the item), as Pydantic does for a list of models, and nothing starts. Items
        the service refuses (not found, invalid playbook) answer `status:"error"` with the
        `detail` the single route would have given; the others start.
        """
        problems = Problems()
        items = _batch_items(problems, await read_json(request))
        problems.check()
        dealt: dict[int, tuple[ExecutionShard, list[int]]] = {}
        for index in range(len(items)):
            shard = self._execution.for_new_execution()
            dealt.setdefault(id(shard), (shard, []))[1].append(index)
        answers = await asyncio.gather(
            *(
                shard.executions.StartBatch(
                    execution_pb2.StartBatchRequest(items=[items[i] for i in indexes]), timeout=self._timeout
                )
                for shard, indexes in dealt.values()
            )
        )
        by_index: dict[int, execution_pb2.StartBatchResult] = {}
        for (_, indexes), answer in zip(dealt.values(), answers, strict=True):
            by_index.update(zip(indexes, answer.results, strict=True))
        results: list[dict[str, Any]] = []
        for index, result in sorted(by_index.items()):
            if result.HasField("error"):
                results.append(
                    {"index": index, "status": "error", "commands_generated": 0, "error": result.error}
                )
            else:
                results.append(
                    {
                        "index": index,
                        "status": "started",
                        "execution_id": str(result.execution_id),
                        "commands_generated": result.commands_generated,
                    }
                )
        started = sum(1 for result in results if result["status"] == "started")
        return json_response(
            {
                "count": len(results),
                "started": started,
                "duplicates": 0,
                "failed": len(results) - started,
                "results": results,
            }
        )

    async def cleanup(self, request: Request) -> Response:
        """§4.12 → `Cleanup` on every shard (each cancels the executions it owns), ids merged in order."""
        problems = Problems()
        fields = problems.body(await read_json(request, required=False))
        minutes = fields.number("older_than_minutes", 5, minimum=1)
        dry_run = fields.flag("dry_run", False)
        problems.check()
        wanted = execution_pb2.CleanupRequest(older_than_minutes=minutes, dry_run=dry_run)
        shards = await asyncio.gather(
            *(shard.executions.Cleanup(wanted, timeout=self._timeout) for shard in self._execution.all())
        )
        found = sorted(execution_id for shard in shards for execution_id in shard.execution_ids)
        if dry_run:
            message = f"[DRY RUN] Would cancel {len(found)} stuck executions older than {minutes} minutes"
        elif not found:
            message = f"No stuck executions found older than {minutes} minutes"
        else:
            message = f"Successfully cancelled {len(found)} stuck executions older than {minutes} minutes"
        return json_response(
            {"cancelled_count": len(found), "execution_ids": [str(i) for i in found], "message": message}
        )

    async def detail(self, request: Request) -> Response:
        """§4.4 → `Get` for the summary, then `ListEvents` (newest first) for one page of events."""
        problems = Problems()
        execution_id = problems.path_id(request, "execution_id")
        query = problems.query(request)
        # The service's page is an int32: a larger one is the caller's 422, not a 500.
        page = query.number("page", 1, minimum=1, maximum=INT32_MAX)
        page_size = query.number("page_size", 100, minimum=10, maximum=500)
        since_event_id = query.identifier("since_event_id")
        event_type = query.text("event_type")
        include_events = query.flag("include_events", True)
        problems.check()
        found = await self._execution.for_execution(execution_id).executions.Get(
            execution_pb2.GetRequest(execution_id=execution_id), timeout=self._timeout
        )
        body = execution_entry(found.summary, utcnow())
        events: list[dict[str, Any]] = []
        paging: dict[str, Any] | None = None
        if include_events:
            listing = events_pb2.ListEventsRequest(
                execution_id=execution_id, newest_first=True, page=page, page_size=page_size
            )
            set_present(listing, after_event_id=since_event_id, event_type=event_type or None)
            listed = await self._events.for_execution(execution_id).ListEvents(listing, timeout=self._timeout)
            events = [event_object(event) for event in listed.events]
            paging = pagination(page, page_size, listed.total)
        body["events"] = events
        body["events_included"] = include_events
        body["events_endpoint"] = f"/api/executions/{execution_id}/events"
        body["pagination"] = paging
        return json_response(body)

    async def status(self, request: Request) -> Response:
        """§4.5 → `Status`. A non-numeric id answers the same 404 as an unknown one."""
        problems = Problems()
        full = problems.query(request).flag("full", False)
        problems.check()
        execution_id = parse_id(request.path_params["execution_id"])
        if execution_id is None:
            raise NotFound("Execution not found")
        status = await self._execution.for_execution(execution_id).executions.Status(
            execution_pb2.StatusRequest(execution_id=execution_id, full=full), timeout=self._timeout
        )
        return json_response(status_body(status, utcnow()))

    async def cancel(self, request: Request) -> Response:
        """§4.8 → `Cancel`. An execution that already ended answers 200 `already_completed`
        (the CLI treats any HTTP error as a failed cancel)."""
        problems = Problems()
        execution_id = problems.path_id(request, "execution_id")
        fields = problems.body(await read_json(request, required=False))
        reason = fields.text("reason") or "User requested cancellation"
        cascade = fields.flag("cascade", True)
        problems.check()
        outcome = await self._execution.for_execution(execution_id).executions.Cancel(
            execution_pb2.CancelRequest(execution_id=execution_id, reason=reason, cascade=cascade),
            timeout=self._timeout,
        )
        return json_response(
            {
                "status": outcome.status,
                "execution_id": str(execution_id),
                "cancelled_executions": [str(i) for i in outcome.cancelled_executions],
                "message": outcome.message,
            }
        )

    async def cancellation_check(self, request: Request) -> Response:
        """§4.9 → `CancellationCheck` (workers poll it during long tools)."""
        problems = Problems()
        execution_id = problems.path_id(request, "execution_id")
        problems.check()
        view = await self._execution.for_execution(execution_id).executions.CancellationCheck(
            execution_pb2.CancellationCheckRequest(execution_id=execution_id), timeout=self._timeout
        )
        return json_response(
            {
                "execution_id": str(execution_id),
                "status": view.status,
                "event_type": view.event_type,
                "cancelled": view.cancelled,
                "completed": view.completed,
                "failed": view.failed,
            }
        )

    async def finalize(self, request: Request) -> Response:
        """§4.10 → `Finalize`; always 200, the outcome is in `status`."""
        problems = Problems()
        execution_id = problems.path_id(request, "execution_id")
        fields = problems.body(await read_json(request, required=False))
        reason = fields.text("reason") or "Abandoned or timed out"
        problems.check()
        outcome = await self._execution.for_execution(execution_id).executions.Finalize(
            execution_pb2.FinalizeRequest(execution_id=execution_id, reason=reason), timeout=self._timeout
        )
        return json_response(
            {"status": outcome.status, "execution_id": str(execution_id), "message": outcome.message}
        )

    async def rerun(self, request: Request) -> Response:
        """§4.11 → `Rerun`: a new execution of the same catalog entry; the answer has §4.1's shape."""
        problems = Problems()
        execution_id = problems.path_id(request, "execution_id")
        fields = problems.body(await read_json(request, required=False))
        workload = fields.mapping("workload", "payload")
        resource_kind = fields.text("resource_kind")
        problems.check()
        rerun = execution_pb2.RerunRequest(
            execution_id=execution_id, workload_json=dumps({} if workload is None else workload)
        )
        set_present(rerun, resource_kind=resource_kind or None)
        started = await self._execution.for_execution(execution_id).executions.Rerun(
            rerun, timeout=self._timeout
        )
        return json_response(
            {
                "execution_id": str(started.execution_id),
                "status": "started",
                "commands_generated": started.commands_generated,
            }
        )

    async def listing(self, request: Request) -> Response:
        """§4.3 → `ListExecutions` on every shard, merged newest start first; a bare JSON array."""
        problems = Problems()
        query = problems.query(request)
        page = query.number("page", 1, minimum=1)
        page_size = min(max(query.number("page_size", 100, minimum=-(2**31)), 1), 200)
        problems.check()
        offset = (page - 1) * page_size
        if offset > MAX_LIST_OFFSET:
            raise Unprocessable(f"Requested page is too deep. Max supported offset is {MAX_LIST_OFFSET}.")
        wanted = execution_pb2.ListExecutionsRequest(limit=offset + page_size, offset=0)
        shards = await asyncio.gather(
            *(
                shard.executions.ListExecutions(wanted, timeout=self._timeout)
                for shard in self._execution.all()
            )
        )
        summaries = newest_first([summary for shard in shards for summary in shard.summaries])
        now = utcnow()
        return json_response([execution_entry(s, now) for s in summaries[offset : offset + page_size]])

    async def raw_events(self, request: Request) -> Response:
        """§4.6: the raw event rows (ids as numbers, `execution_id` a string), newest first, paged."""
        problems = Problems()
        execution_id = problems.path_id(request, "execution_id")
        query = problems.query(request)
        # The service's page is an int32: a larger one is the caller's 422, not a 500.
        page = query.number("page", 1, minimum=1, maximum=INT32_MAX)
        page_size = query.number("page_size", 100, minimum=10, maximum=500)
        since_event_id = query.identifier("since_event_id")
        event_type = query.text("event_type")
        problems.check()
        listing = events_pb2.ListEventsRequest(
            execution_id=execution_id, newest_first=True, page=page, page_size=page_size
        )
        set_present(listing, after_event_id=since_event_id, event_type=event_type or None)
        listed = await self._events.for_execution(execution_id).ListEvents(listing, timeout=self._timeout)
        summary = execution_pb2.GetRequest(execution_id=execution_id)
        if page == 1 and not event_type and listed.events:
            # The log's newest event: this route is what clients poll for a run's end, and a
            # shard whose state has folded it answers without reading the log again.
            summary.seen_event_id = listed.events[0].event_id
        found = await self._execution.for_execution(execution_id).executions.Get(
            summary, timeout=self._timeout
        )
        return json_response(
            {
                "execution_id": str(execution_id),
                "path": found.summary.path,
                "status": found.summary.status,
                "events": [raw_event_row(event) for event in listed.events],
                "pagination": pagination(page, page_size, listed.total),
            }
        )


def newest_first(summaries: Sequence[execution_pb2.ExecutionSummary]) -> list[execution_pb2.ExecutionSummary]:
    """Shards' summaries merged in the list order: newest start first, ties by id."""
    return sorted(
        summaries, key=lambda s: (s.start_time.seconds, s.start_time.nanos, s.execution_id), reverse=True
    )


def _start_request(fields: Fields) -> execution_pb2.StartRequest:
    """A §4.1 body; problems go to the `Problems` that `fields` reports to."""
    path = fields.text("path")
    catalog_id = fields.identifier("catalog_id")
    version = fields.version("version", latest=False)
    resource_kind = fields.text("resource_kind")
    workload = fields.mapping("workload", "payload")
    parent_execution_id = fields.identifier("parent_execution_id")
    trace = fields.mapping("trace")
    execution_pool = fields.text("execution_pool")
    if not path and not catalog_id:
        fields.value_error("Either 'path' or 'catalog_id' must be provided")
    start = execution_pb2.StartRequest(
        workload_json=dumps({} if workload is None else workload),
        trace_json=b"" if trace is None else dumps(trace),
    )
    set_present(
        start,
        path=path or None,
        catalog_id=catalog_id or None,
        version=version,
        resource_kind=resource_kind or None,
        parent_execution_id=parent_execution_id,
        execution_pool=execution_pool or None,
    )
    return start


def _batch_items(problems: Problems, body: Any) -> list[execution_pb2.StartRequest]:
    """The §4.2 `executions` list (1..1000 items, each a §4.1 body), reported as Pydantic would:
    item by item in order, or only the length when there are too many.

    Each item's `Fields` is made when its turn comes, so the problems of one item never hide the
    next one's cross-field rule (`Fields.objects` makes them all before any is read).
    """
    fields = problems.body(body)
    listed = body.get("executions") if isinstance(body, dict) else None
    if not isinstance(listed, list) or not listed:
        if isinstance(body, dict):
            fields.objects("executions")  # reports it missing, not a list, or empty
        return []
    if len(listed) > MAX_BATCH_EXECUTIONS:
        problems.add(
            "too_long",
            ["body", "executions"],
            f"List should have at most {MAX_BATCH_EXECUTIONS} items after validation, not {len(listed)}",
            listed,
            {"field_type": "List", "max_length": MAX_BATCH_EXECUTIONS, "actual_length": len(listed)},
        )
        return []
    items = []
    for index, item in enumerate(listed):
        if isinstance(item, dict):
            items.append(_start_request(Fields(item, "body", problems, ("executions", index))))
        else:
            problems.add("model_attributes_type", ["body", "executions", index], NOT_AN_OBJECT, item)
    return items
