"""The OpenAPI 3.1 document of the gateway's HTTP API (http-api.md), served at `GET /openapi.json`.

Plain data: one function per area of the contract returns its paths, and the objects several
routes share are component schemas referenced with `$ref`. Shapes, statuses and messages are the
spec's; where the spec leaves a shape open (`ui_schema`, the events batch status) the document
says only what every answer has. `python -m gateway_http.openapi` writes `docs/openapi.json`
(a test keeps the file equal to what the route serves).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from kernel.metrics import BUILD_VERSION

Schema = dict[str, Any]

JSON = "application/json"
VAR_TYPES = ["user_defined", "step_result", "computed", "iterator_state"]
SCOPE_TYPES = ["global", "local", "shared"]
RESULT_SCOPES = ["step", "execution", "workflow", "permanent"]
RESULT_STORES = ["memory", "kv", "disk", "object", "s3", "gcs", "db", "duckdb", "eventlog"]
DOCS_FILE = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"

DESCRIPTION = """\
The NoETL control plane HTTP API, served by the noetl-mesh gateway (contract: http-api.md).

- Every `/api/x` route is also served as `/noetl/x` with identical behaviour (the prefix the
  `noetl` CLI uses in gateway mode), except `/api/runtime/contract`, which is only under `/api`.
  This document lists the `/api` form; `/health`, `/metrics` and `/openapi.json` are root routes.
- Responses are compact UTF-8 JSON, keys in the order shown by the contract; `null` values are
  sent, not omitted.
- Ids are 64-bit snowflakes above 2^53: an id the contract sends as a string is a decimal
  string here, and every id input accepts a JSON number or a decimal string.
- Errors are `{"detail": "<message>"}` (or `{"detail": {"code": ...}}` for structured errors);
  request validation answers 422 with FastAPI's list form
  `{"detail": [{"type", "loc", "msg", "input", "ctx"?}]}`. Unknown routes answer 404
  `{"detail": "Not Found"}`, a wrong method 405 `{"detail": "Method Not Allowed"}`, a request
  running past 1799 s 504. A backend that is down or saturated answers 503, with `Retry-After`.
- `/api/internal/*` and catalog delete/restore are behind the internal token gate:
  `Authorization: Bearer <NOETL_INTERNAL_API_TOKEN>`, checked before the body is read
  (503 when no token is configured, 403 for a missing, malformed or wrong token).
"""

TAGS = [
    {"name": "health", "description": "Liveness, metrics and pool telemetry (http-api.md §2)"},
    {"name": "catalog", "description": "Versioned playbooks and other resources (§3)"},
    {"name": "executions", "description": "Starting, inspecting and stopping executions (§4)"},
    {"name": "events", "description": "Worker result ingest and event results (§5)"},
    {"name": "commands", "description": "The claim protocol (§6)"},
    {
        "name": "runtime",
        "description": "Worker pools, shard arithmetic, the runtime contract, this document (§7)",
    },
    {"name": "variables", "description": "Execution-scoped variables (§8)"},
    {"name": "credentials", "description": "Credentials and the keychain (§9)"},
    {"name": "results", "description": "The result store (§10)"},
    {"name": "database", "description": "Database utilities (§11)"},
    {"name": "internal", "description": "Token-gated internal API: outbox, projection, wallet (§12)"},
]


# --------------------------------------------------------------------------------------------------
# Building blocks


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _response_ref(name: str) -> Schema:
    return {"$ref": f"#/components/responses/{name}"}


def _obj(properties: dict[str, Schema], required: list[str] | None = None, **extra: Any) -> Schema:
    """An object schema; `required` defaults to every property (the contract's fixed key sets)."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        **extra,
    }


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


def _ok(description: str, schema: Schema, status: str = "200") -> dict[str, Schema]:
    return {status: {"description": description, "content": {JSON: {"schema": schema}}}}


def _body(schema: Schema, *, required: bool = True) -> Schema:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def _path(name: str, description: str, schema: Schema | None = None) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or ref("IdText"),
    }


def _query(name: str, schema: Schema, description: str, *, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


def _retry_after_header() -> Schema:
    return {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}


def _errors(*statuses: str) -> dict[str, Schema]:
    """The shared error responses by status (see `_responses`)."""
    return {status: _response_ref(_ERROR_RESPONSES[status]) for status in statuses}


# Every route that calls a service can answer 503 (service down or saturated) and 504 (§1.1).
BACKEND = ("503", "504")
# A route that reads a JSON body: 400 for a body that is not text, 413 for one over the route's
# limit, 422 for one that is not JSON or fails validation (including nesting, NUL, lone surrogates).
BODY = ("400", "413", "422")


def _operation(
    operation_id: str,
    tag: str,
    summary: str,
    responses: dict[str, Schema],
    *,
    description: str | None = None,
    parameters: list[Schema] | None = None,
    body: Schema | None = None,
    internal: bool = False,
) -> Schema:
    operation: Schema = {"operationId": operation_id, "tags": [tag], "summary": summary}
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
    if internal:
        operation["security"] = [{"internalToken": []}]
        responses = {**responses, **_errors("403", "503")}
    operation["responses"] = dict(sorted(responses.items()))
    return operation


# --------------------------------------------------------------------------------------------------
# Paths, by area


def _health_paths() -> dict[str, Schema]:
    health = ref("HealthStatus")
    return {
        "/health": {
            "get": _operation(
                "health_root", "health", "Liveness (no backend is called)", _ok("Alive", health)
            )
        },
        "/api/health": {
            "get": _operation("health", "health", "Liveness (no backend is called)", _ok("Alive", health))
        },
        "/api/pool/status": {
            "get": _operation(
                "pool_status",
                "health",
                "Database pool telemetry of the service that owns the pool",
                {
                    **_ok(
                        "Pool telemetry; all zeros and `unavailable` before the pool exists",
                        ref("PoolStatus"),
                    ),
                    **_errors(*BACKEND),
                },
            )
        },
        "/metrics": {
            "get": _operation(
                "metrics",
                "health",
                "Prometheus text exposition (absent when NOETL_DISABLE_METRICS=true)",
                {
                    "200": {
                        "description": "Metrics (data-model.md §12)",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            )
        },
        "/openapi.json": {
            "get": _operation(
                "openapi",
                "runtime",
                "This document",
                _ok("The OpenAPI 3.1 document of the gateway", {"type": "object"}),
            )
        },
    }


def _catalog_paths() -> dict[str, Schema]:
    change_body = _body(
        _obj(
            {
                "path": {"type": "string"},
                "version": {
                    "description": "Omitted: every version of the path",
                    "anyOf": [{"type": "integer"}, {"type": "string"}],
                },
            },
            ["path"],
        )
    )
    return {
        "/api/catalog/register": {
            "post": _operation(
                "catalog_register",
                "catalog",
                "Register a new version of a resource",
                {
                    **_ok("Registered", ref("RegisterResponse")),
                    **_errors(*BODY, "500", *BACKEND),
                },
                description=(
                    "`content` is YAML text, base64 or raw. The path comes from `metadata.path`, `path`,"
                    " `metadata.name` or `name`; every call creates a new version. Content that is not"
                    " a YAML mapping answers 400 `Error registering resource: <error>.`"
                ),
                body=_body(ref("RegisterRequest")),
            )
        },
        "/api/catalog/register/batch": {
            "post": _operation(
                "catalog_register_batch",
                "catalog",
                "Register up to 1000 resources, each independently",
                {
                    **_ok("One result per item, in order", ref("RegisterBatchResponse")),
                    **_errors(*BODY, *BACKEND),
                },
                body=_body(_obj({"items": _array(ref("RegisterRequest"), minItems=1, maxItems=1000)})),
            )
        },
        "/api/catalog/list": {
            "post": _operation(
                "catalog_list",
                "catalog",
                "List catalog entries, newest first (an empty body lists everything)",
                {
                    **_ok("The entries", _obj({"entries": _array(ref("CatalogEntry"))})),
                    **_errors(*BODY, "500", *BACKEND),
                },
                body=_body(ref("CatalogListRequest"), required=False),
            )
        },
        "/api/catalog/resource": {
            "post": _operation(
                "catalog_resource",
                "catalog",
                "One catalog entry by id, or by path and version",
                {**_ok("The entry", ref("CatalogEntry")), **_errors(*BODY, "404", *BACKEND)},
                description=(
                    '`catalog_id` wins over `path`; a missing or `"latest"` version means the highest'
                    " non-archived one. Neither given: 422 `Value error, At least one identifier must be"
                    " provided: catalog_id or path`. No match: 404 `Catalog entry not found`."
                ),
                body=_body(
                    _obj(
                        {
                            "catalog_id": ref("IdInput"),
                            "path": {"type": "string"},
                            "version": ref("VersionInput"),
                        },
                        [],
                    )
                ),
            )
        },
        "/api/catalog/delete": {
            "post": _operation(
                "catalog_delete",
                "catalog",
                "Delete (or archive, when executions used them) versions of a path",
                {
                    **_ok("What was removed; `count` 0 when nothing matched", ref("CatalogChange")),
                    **_errors(*BODY, *BACKEND),
                },
                body=change_body,
                internal=True,
            )
        },
        "/api/catalog/restore": {
            "post": _operation(
                "catalog_restore",
                "catalog",
                "Restore archived versions of a path",
                {
                    **_ok("What was restored; `count` 0 when nothing matched", ref("CatalogChange")),
                    **_errors(*BODY, *BACKEND),
                },
                body=change_body,
                internal=True,
            )
        },
        "/api/catalog/{path}/ui_schema": {
            "get": _operation(
                "catalog_ui_schema",
                "catalog",
                "A form description of a playbook's workload, for user interfaces",
                {**_ok("The form description", ref("UiSchema")), **_errors("404", "422", *BACKEND)},
                description="`path` is the catalog path and may contain `/`.",
                parameters=[
                    _path("path", "Catalog path", {"type": "string", "minLength": 1}),
                    _query("version", ref("VersionInput"), "Version; omitted or `latest`: the latest"),
                ],
            )
        },
    }


def _execution_paths() -> dict[str, Schema]:
    execution_id = _path("execution_id", "Execution id")
    paging = [
        _query("page", {"type": "integer", "minimum": 1, "maximum": 2147483647, "default": 1}, "Page number"),
        _query(
            "page_size", {"type": "integer", "minimum": 10, "maximum": 500, "default": 100}, "Events per page"
        ),
        _query("since_event_id", ref("IdText"), "Only events with a larger `event_id`"),
        _query("event_type", {"type": "string"}, "Only events of this type"),
    ]
    return {
        "/api/execute": {
            "post": _operation(
                "execute",
                "executions",
                "Start an execution of a catalog entry",
                {**_ok("Started", ref("ExecuteResponse")), **_errors(*BODY, "404", "500", *BACKEND)},
                description=(
                    "Neither `path` nor `catalog_id`: 422 `Value error, Either 'path' or 'catalog_id' must"
                    " be provided`. Unknown entry: 404 `Executable catalog entry not found: <path>`. A"
                    " playbook that does not deserialize: 400; one that is semantically invalid, or a kind"
                    ' that is not executable: 422 `{"detail": "<message>"}`.'
                ),
                body=_body(ref("ExecuteRequest")),
            )
        },
        "/api/execute/batch": {
            "post": _operation(
                "execute_batch",
                "executions",
                "Start up to 1000 executions, each independently",
                {
                    **_ok("One result per item, in order", ref("ExecuteBatchResponse")),
                    **_errors(*BODY, *BACKEND),
                },
                body=_body(_obj({"executions": _array(ref("ExecuteRequest"), minItems=1, maxItems=1000)})),
            )
        },
        "/api/executions": {
            "get": _operation(
                "executions_list",
                "executions",
                "Executions, newest start first (a bare JSON array)",
                {**_ok("One page of executions", _array(ref("ExecutionEntry"))), **_errors("422", *BACKEND)},
                description="An offset `(page-1)·page_size` above 5000 answers 422.",
                parameters=[
                    _query("page", {"type": "integer", "minimum": 1, "default": 1}, "Page number"),
                    _query("page_size", {"type": "integer", "default": 100}, "Clamped to 1..200"),
                ],
            )
        },
        "/api/executions/{execution_id}": {
            "get": _operation(
                "execution_detail",
                "executions",
                "One execution with a page of its events, newest first",
                {**_ok("The execution", ref("ExecutionDetail")), **_errors("404", "422", *BACKEND)},
                parameters=[
                    execution_id,
                    *paging,
                    _query("include_events", {"type": "boolean", "default": True}, "false: no events"),
                ],
            )
        },
        "/api/executions/{execution_id}/status": {
            "get": _operation(
                "execution_status",
                "executions",
                "Progress and variables of an execution",
                {**_ok("The status", ref("ExecutionStatus")), **_errors("404", "422", *BACKEND)},
                description="An unknown or non-numeric id answers 404 `Execution not found`.",
                parameters=[
                    execution_id,
                    _query("full", {"type": "boolean", "default": False}, "true: variables uncompacted"),
                ],
            )
        },
        "/api/executions/{execution_id}/events": {
            "get": _operation(
                "execution_events",
                "executions",
                "The raw event rows of an execution, newest first",
                {**_ok("One page of rows", ref("RawEventPage")), **_errors("404", "422", *BACKEND)},
                parameters=[execution_id, *paging],
            )
        },
        "/api/executions/{execution_id}/events/stream": {
            "get": _operation(
                "execution_event_stream",
                "executions",
                "Server-Sent Events of an execution: the log replayed, then live",
                {
                    "200": {
                        "description": (
                            "One message per event (`id`, `event`, `data` = the event object), a"
                            " `: keep-alive` comment every 15 s; closes after the terminal event"
                        ),
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_errors("404", "422", *BACKEND),
                },
                parameters=[
                    execution_id,
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "description": "Resume: only events with a larger `event_id`",
                        "schema": {"type": "string"},
                    },
                ],
            )
        },
        "/api/executions/{execution_id}/cancel": {
            "post": _operation(
                "execution_cancel",
                "executions",
                "Cancel an execution and, with `cascade`, its descendants",
                {
                    **_ok("Cancelled, or already completed", ref("CancelResponse")),
                    **_errors(*BODY, "404", *BACKEND),
                },
                parameters=[execution_id],
                body=_body(
                    _obj(
                        {
                            "reason": {"type": "string", "default": "User requested cancellation"},
                            "cascade": {"type": "boolean", "default": True},
                        },
                        [],
                    ),
                    required=False,
                ),
            )
        },
        "/api/executions/{execution_id}/cancellation-check": {
            "get": _operation(
                "execution_cancellation_check",
                "executions",
                "Whether an execution was cancelled or has ended",
                {**_ok("The check", ref("CancellationCheck")), **_errors("404", "422", *BACKEND)},
                parameters=[execution_id],
            )
        },
        "/api/executions/{execution_id}/finalize": {
            "post": _operation(
                "execution_finalize",
                "executions",
                "Force a terminal state (always 200; the outcome is in `status`)",
                {
                    **_ok("finalized, already_completed or not_found", ref("FinalizeResponse")),
                    **_errors(*BODY, *BACKEND),
                },
                parameters=[execution_id],
                body=_body(
                    _obj({"reason": {"type": "string", "default": "Abandoned or timed out"}}, []),
                    required=False,
                ),
            )
        },
        "/api/executions/{execution_id}/rerun": {
            "post": _operation(
                "execution_rerun",
                "executions",
                "Start a new execution of the same catalog entry",
                {**_ok("Started", ref("ExecuteResponse")), **_errors(*BODY, "404", *BACKEND)},
                parameters=[execution_id],
                body=_body(
                    _obj(
                        {
                            "workload": {"type": "object"},
                            "payload": {"type": "object", "description": "Alias of `workload`"},
                            "resource_kind": {"type": "string"},
                        },
                        [],
                    ),
                    required=False,
                ),
            )
        },
        "/api/executions/cleanup": {
            "post": _operation(
                "executions_cleanup",
                "executions",
                "Cancel executions stuck without a terminal event",
                {
                    **_ok("What was (or would be) cancelled", ref("CleanupResponse")),
                    **_errors(*BODY, *BACKEND),
                },
                body=_body(
                    _obj(
                        {
                            "older_than_minutes": {"type": "integer", "minimum": 1, "default": 5},
                            "dry_run": {"type": "boolean", "default": False},
                        },
                        [],
                    ),
                    required=False,
                ),
            )
        },
    }


def _event_paths() -> dict[str, Schema]:
    idempotency = [
        {
            "name": header,
            "in": "header",
            "required": False,
            "description": "A replay with the same key returns the first answer with `duplicate: true`",
            "schema": {"type": "string"},
        }
        for header in ("Idempotency-Key", "X-Idempotency-Key")
    ]
    return {
        "/api/events": {
            "post": _operation(
                "events_emit",
                "events",
                "Ingest one worker event",
                {
                    **_ok("Stored (or the existing event of a repeat)", ref("EmitResponse")),
                    **_errors(*BODY, "404", "409", *BACKEND),
                },
                description=(
                    'Payload checks answer 422 `{"detail": "<message>"}`; an execution without'
                    " events 404 `Execution <id> not found`; a `command.claimed` from another worker"
                    " 409."
                ),
                body=_body(ref("WorkerEvent")),
            )
        },
        "/api/events/batch": {
            "post": _operation(
                "events_batch",
                "events",
                "Ingest up to 256 worker events of one execution in one transaction",
                {
                    **_ok("Accepted", ref("EventBatchResponse"), "202"),
                    **_errors(*BODY, "404", "409", *BACKEND),
                },
                description=(
                    "A replay of an `Idempotency-Key` with the same events answers the recorded batch"
                    " (`duplicate: true`); with other events it is 409 naming the key, and nothing is stored."
                ),
                parameters=idempotency,
                body=_body(ref("EventBatchRequest")),
            )
        },
        "/api/events/batch/{request_id}/status": {
            "get": _operation(
                "events_batch_status",
                "events",
                "What a recorded events batch stored",
                {**_ok("The batch", ref("EventBatchStatus")), **_errors("404", "422", *BACKEND)},
                parameters=[
                    _path("request_id", "The batch's `request_id`", {"type": "string", "minLength": 1})
                ],
            )
        },
        "/api/events/{event_id}/result": {
            "get": _operation(
                "event_result",
                "events",
                "The stored `result` of one event (null when it has none)",
                {
                    **_ok("The result object, or null", _nullable({"type": "object"})),
                    **_errors("404", "422", *BACKEND),
                },
                description=(
                    "Shown through the display filter of data-model.md §9.10 (values under secret-looking"
                    " keys and secret-looking strings read `[REDACTED]`) unless `NOETL_DISPLAY_REDACTION=false`;"
                    " the stored result itself is never altered."
                ),
                parameters=[_path("event_id", "Event id")],
            )
        },
    }


def _command_paths() -> dict[str, Schema]:
    event_id = _path("event_id", "Id of the command's `command.issued` event")
    return {
        "/api/commands/{event_id}": {
            "get": _operation(
                "command_get",
                "commands",
                "A command by its `command.issued` event id",
                {**_ok("The command", ref("Command")), **_errors("404", "422", *BACKEND)},
                parameters=[event_id],
            )
        },
        "/api/commands/{event_id}/claim": {
            "post": _operation(
                "command_claim",
                "commands",
                "Claim a command for a worker (lease 120 s)",
                {
                    **_ok("Claimed (or already held by this worker)", ref("ClaimedCommand")),
                    **_errors(*BODY, "404", "409", *BACKEND),
                },
                description=(
                    '409 `{"detail": {"code": "active_claim" | "already_terminal", ...}}`, with'
                    " `Retry-After: 2` while another worker holds a live claim."
                ),
                parameters=[event_id],
                body=_body(
                    _obj({"worker_id": {"type": "string"}, "locality": {"type": "object"}}, ["worker_id"])
                ),
            )
        },
    }


def _runtime_paths() -> dict[str, Schema]:
    deregister = _operation(
        "worker_pool_deregister",
        "runtime",
        "Mark a worker pool offline (an unknown name is not an error)",
        {**_ok("Deregistered", ref("PoolDeregistered")), **_errors(*BODY, *BACKEND)},
        body=_body(
            _obj(
                {
                    "name": {"type": "string"},
                    "kind": {"type": "string"},
                    "component_type": {"type": "string", "description": "Alias of `kind`"},
                },
                ["name"],
            )
        ),
    )
    return {
        "/api/worker/pool/register": {
            "post": _operation(
                "worker_pool_register",
                "runtime",
                "Register (upsert) a worker pool",
                {**_ok("Registered", ref("PoolRegistered")), **_errors(*BODY, *BACKEND)},
                body=_body(ref("PoolRegistration")),
            )
        },
        "/api/worker/pool/deregister": {
            "post": deregister,
            "delete": {**deregister, "operationId": "worker_pool_deregister_delete"},
        },
        "/api/worker/pool/heartbeat": {
            "post": _operation(
                "worker_pool_heartbeat",
                "runtime",
                "Heartbeat of a worker pool",
                {
                    **_ok("Alive (`ok`) or re-created (`recreated`)", ref("PoolHeartbeat")),
                    "404": {
                        "description": 'Unknown pool and no re-create: `{"detail": {"status": "unknown", ...}}`',
                        "headers": {"Retry-After": _retry_after_header()},
                        "content": {JSON: {"schema": ref("StructuredError")}},
                    },
                    **_errors(*BODY, *BACKEND),
                },
                body=_body(
                    _obj(
                        {
                            "name": {
                                "type": "string",
                                "description": "Omitted: the gateway's configured pool",
                            },
                            "registration": ref("PoolRegistration"),
                        },
                        [],
                    ),
                    required=False,
                ),
            )
        },
        "/api/worker/pools": {
            "get": _operation(
                "worker_pools",
                "runtime",
                "Registered worker pools (a database error is a 200 with `error` set)",
                {**_ok("The pools", ref("PoolList")), **_errors("422", *BACKEND)},
                parameters=[
                    _query("runtime", {"type": "string"}, "Matches `runtime.type`"),
                    _query("status", {"type": "string"}, "Exact status"),
                ],
            )
        },
        "/api/runtime/shard-info": {
            "get": _operation(
                "runtime_shard_info",
                "runtime",
                "Which shard owns an execution id (`shard_for`, data-model.md §10)",
                {**_ok("The shard", ref("ShardInfo")), **_errors("400")},
                description="A missing parameter, a bad id or a count outside 1..1024 answers 400.",
                parameters=[
                    _query("execution_id", ref("IdText"), "Execution id", required=True),
                    _query(
                        "shard_count",
                        {"type": "integer", "minimum": 1, "maximum": 1024},
                        "Number of shards",
                        required=True,
                    ),
                ],
            )
        },
        "/api/runtime/contract": {
            "get": _operation(
                "runtime_contract",
                "runtime",
                "Machine-readable description of this deployment (only under /api)",
                _ok("The contract", ref("RuntimeContract")),
            )
        },
    }


def _variable_paths() -> dict[str, Schema]:
    execution_id = _path("execution_id", "Execution id")
    var_name = _path("var_name", "Variable name", {"type": "string", "minLength": 1})
    return {
        "/api/vars/{execution_id}": {
            "get": _operation(
                "vars_list",
                "variables",
                "Every variable of an execution",
                {**_ok("The variables", ref("VariableMap")), **_errors("422", "500", *BACKEND)},
                parameters=[execution_id],
            ),
            "post": _operation(
                "vars_set",
                "variables",
                "Set (upsert) variables",
                {**_ok("Set", ref("VariablesSet")), **_errors(*BODY, "500", *BACKEND)},
                description=(
                    "An empty map: 400 `Request body must contain 'variables' dict with at least one"
                    " variable`; an unknown `var_type`: 400 `Invalid var_type '<t>'. Must be one of:"
                    " user_defined, step_result, computed, iterator_state`."
                ),
                parameters=[execution_id],
                body=_body(
                    _obj(
                        {
                            "variables": {"type": "object"},
                            "var_type": {"type": "string", "enum": VAR_TYPES, "default": "user_defined"},
                            "source_step": _nullable({"type": "string"}),
                        },
                        ["variables"],
                    )
                ),
            ),
            "delete": _operation(
                "vars_clear",
                "variables",
                "Delete every variable of an execution",
                {
                    **_ok(
                        "Deleted",
                        _obj({"execution_id": ref("IdNumber"), "deleted_count": {"type": "integer"}}),
                    ),
                    **_errors("422", "500", *BACKEND),
                },
                parameters=[execution_id],
            ),
        },
        "/api/vars/{execution_id}/{var_name}": {
            "get": _operation(
                "vars_get",
                "variables",
                "One variable (bumps `access_count`)",
                {**_ok("The variable", ref("Variable")), **_errors("404", "422", "500", *BACKEND)},
                parameters=[execution_id, var_name],
            ),
            "delete": _operation(
                "vars_delete",
                "variables",
                "Delete one variable (`deleted: false` when absent)",
                {
                    **_ok(
                        "Deleted or absent",
                        _obj(
                            {
                                "execution_id": ref("IdNumber"),
                                "var_name": {"type": "string"},
                                "deleted": {"type": "boolean"},
                            }
                        ),
                    ),
                    **_errors("422", "500", *BACKEND),
                },
                parameters=[execution_id, var_name],
            ),
        },
    }


def _credential_paths() -> dict[str, Schema]:
    identifier = _path(
        "identifier",
        "All digits: a credential id; otherwise a name (may contain `/`)",
        {"type": "string", "minLength": 1},
    )
    catalog_id = _path("catalog_id", "Catalog id of the playbook")
    keychain_name = _path("keychain_name", "Keychain entry name", {"type": "string", "minLength": 1})
    keychain_query = [
        _query("execution_id", ref("IdText"), "Execution of a `local` entry"),
        _query("scope_type", {"type": "string", "enum": SCOPE_TYPES, "default": "global"}, "Scope"),
    ]
    return {
        "/api/credentials": {
            "post": _operation(
                "credential_put",
                "credentials",
                "Create or replace a credential (upsert by name)",
                {**_ok("Stored; `data` is null", ref("Credential")), **_errors(*BODY, *BACKEND)},
                body=_body(ref("CredentialRequest")),
            ),
            "get": _operation(
                "credential_list",
                "credentials",
                "Credentials, without data",
                {**_ok("The credentials", ref("CredentialList")), **_errors("422", *BACKEND)},
                parameters=[
                    _query("type", {"type": "string"}, "Exact type"),
                    _query("q", {"type": "string"}, "Substring of the name or description"),
                ],
            ),
        },
        "/api/credentials/{identifier}": {
            "get": _operation(
                "credential_get",
                "credentials",
                "One credential; its data only with `include_data=true` (audited)",
                {
                    **_ok("The credential", ref("Credential")),
                    **_errors("400", "404", "409", "422", "500", *BACKEND),
                },
                description=(
                    "With `include_data=true` and an `execution_id`, a name that is no stored credential"
                    " is resolved as a keychain alias of that execution's playbook. 404 `Credential not"
                    " found`; 500 when stored data cannot be decrypted."
                ),
                parameters=[
                    identifier,
                    _query(
                        "include_data", {"type": "boolean", "default": False}, "Return the decrypted data"
                    ),
                    _query("execution_id", ref("IdText"), "Recorded in the audit; keychain resolution"),
                    _query("parent_execution_id", ref("IdText"), "Recorded in the audit"),
                    _query("catalog_id", ref("IdText"), "Recorded in the audit"),
                ],
            ),
            "delete": _operation(
                "credential_delete",
                "credentials",
                "Delete a credential",
                {
                    **_ok(
                        "Deleted",
                        _obj(
                            {"message": {"type": "string"}, "id": ref("IdString"), "name": {"type": "string"}}
                        ),
                    ),
                    **_errors("404", *BACKEND),
                },
                parameters=[identifier],
            ),
        },
        "/api/keychain/{catalog_id}/{keychain_name}": {
            "get": _operation(
                "keychain_get",
                "credentials",
                "Read a keychain entry (bumps `access_count`)",
                {
                    **_ok("success, expired or not_found", ref("KeychainRead")),
                    **_errors("422", "500", *BACKEND),
                },
                parameters=[catalog_id, keychain_name, *keychain_query],
            ),
            "post": _operation(
                "keychain_set",
                "credentials",
                "Cache a keychain entry",
                {**_ok("Cached", ref("KeychainCached")), **_errors(*BODY, *BACKEND)},
                description="An unknown `scope_type` or `cache_type` answers 400.",
                parameters=[catalog_id, keychain_name],
                body=_body(ref("KeychainRequest")),
            ),
            "delete": _operation(
                "keychain_delete",
                "credentials",
                "Delete a keychain entry (`status: error` when nothing was deleted)",
                {
                    **_ok(
                        "Deleted or not found",
                        _obj(
                            {
                                "status": {"type": "string", "enum": ["success", "error"]},
                                "message": {"type": "string"},
                                "keychain_name": {"type": "string"},
                                "catalog_id": ref("IdNumber"),
                            }
                        ),
                    ),
                    **_errors("422", *BACKEND),
                },
                parameters=[catalog_id, keychain_name, *keychain_query],
            ),
        },
        "/api/keychain/catalog/{catalog_id}": {
            "get": _operation(
                "keychain_list",
                "credentials",
                "Keychain entries of a playbook, metadata only",
                {**_ok("The entries", ref("KeychainList")), **_errors("422", *BACKEND)},
                parameters=[catalog_id],
            )
        },
    }


def _result_paths() -> dict[str, Schema]:
    return {
        "/api/result/{execution_id}": {
            "put": _operation(
                "result_put",
                "results",
                "Store a result (secrets in `data` and `correlation` are scrubbed)",
                {**_ok("Stored", ref("ResultStored")), **_errors(*BODY, *BACKEND)},
                description=(
                    "400 `Invalid scope: <s>. Use: step, execution, workflow, permanent`, `Invalid store"
                    " tier: <s>`, or an invalid `ttl`. Bodies up to at least 64 MiB are accepted."
                ),
                parameters=[_path("execution_id", "Execution id")],
                body=_body(ref("ResultRequest")),
            )
        },
        "/api/result/resolve": {
            "get": _operation(
                "result_resolve",
                "results",
                "The stored JSON value of a result reference, as stored (resolved secrets were replaced by the writer)",
                {**_ok("The value itself, any JSON type", {}), **_errors("400", "404", "422", *BACKEND)},
                parameters=[
                    _query(
                        "ref",
                        {"type": "string"},
                        "`noetl://execution/<id>/result/<name>/<id>`",
                        required=True,
                    )
                ],
            )
        },
    }


def _database_paths() -> dict[str, Schema]:
    return {
        "/api/postgres/execute": {
            "post": _operation(
                "postgres_execute",
                "database",
                "Run SQL (or CALL a procedure); rows come back as objects",
                {
                    **_ok("Rows, null without rows, or the error", ref("SqlResult")),
                    **_errors(*BODY, "404", *BACKEND),
                },
                description=(
                    "Neither `query` (or `query_base64`) nor `procedure`: 400 `query or procedure is"
                    " required`; an unknown `credential`: 404. SQL errors are a 200 with `status: error`."
                    " Connection priority: `connection_string` > `credential` > `database` > the default."
                ),
                body=_body(ref("SqlRequest")),
            )
        },
        "/api/db/init": {
            "post": _operation(
                "db_init",
                "database",
                "Verify the schema (never runs DDL)",
                {
                    **_ok("ok, or warning with the missing tables", ref("SchemaInit")),
                    **_errors("500", *BACKEND),
                },
            )
        },
        "/api/db/validate": {
            "get": _operation(
                "db_validate",
                "database",
                "Check the required tables (still 200 when some are missing)",
                {**_ok("The check", ref("SchemaValidation")), **_errors("500", *BACKEND)},
            )
        },
    }


def _internal_paths() -> dict[str, Schema]:
    def gated(operation_id: str, summary: str, responses: dict[str, Schema], **kwargs: Any) -> Schema:
        return _operation(operation_id, "internal", summary, responses, internal=True, **kwargs)

    optional_int = {"type": "integer", "format": "int64"}
    return {
        "/api/internal/outbox/claim": {
            "post": gated(
                "outbox_claim",
                "Claim due outbox rows (limit clamped to 1..1000)",
                {**_ok("The claimed rows", ref("OutboxClaim")), **_errors(*BODY, *BACKEND)},
                body=_body(_obj({"limit": {**optional_int, "default": 100}}, []), required=False),
            )
        },
        "/api/internal/outbox/mark-published": {
            "post": gated(
                "outbox_mark_published",
                "Mark outbox rows published (idempotent)",
                {**_ok("Rows affected", _obj({"marked": {"type": "integer"}})), **_errors(*BODY, *BACKEND)},
                body=_body(_obj({"outbox_ids": _array(ref("IdInput"), minItems=1)})),
            )
        },
        "/api/internal/outbox/mark-failed": {
            "post": gated(
                "outbox_mark_failed",
                "Record a failed publish: backoff, or DEAD at the attempt limit",
                {
                    **_ok(
                        "The backoff in seconds (0 when the row is now DEAD)",
                        _obj({"marked": {"type": "boolean"}, "available_at_in": {"type": "integer"}}),
                    ),
                    **_errors(*BODY, *BACKEND),
                },
                body=_body(
                    _obj(
                        {
                            "outbox_id": ref("IdInput"),
                            "error": {
                                "type": "string",
                                "minLength": 1,
                                "description": "Truncated to 2000 chars",
                            },
                            "attempts": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 2147483647,
                                "default": 1,
                            },
                            "max_delay_seconds": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 2147483647,
                                "default": 300,
                            },
                        },
                        ["outbox_id", "error"],
                    )
                ),
            )
        },
        "/api/internal/outbox/pending-count": {
            "get": gated(
                "outbox_pending_count",
                "Rows waiting to be published",
                {**_ok("The count", _obj({"pending": {"type": "integer"}})), **_errors(*BACKEND)},
            )
        },
        "/api/internal/outbox/dead": {
            "get": gated(
                "outbox_dead",
                "Dead letters in `outbox_id` order, one page after a cursor",
                {**_ok("One page", ref("DeadLetterPage")), **_errors("422", *BACKEND)},
                parameters=[
                    _query("limit", {**optional_int, "default": 100}, "Clamped to 1..1000"),
                    _query(
                        "after",
                        {**optional_int, "minimum": 0, "default": 0},
                        "Cursor: the last `outbox_id` seen",
                    ),
                ],
            )
        },
        "/api/internal/outbox/dead/requeue": {
            "post": gated(
                "outbox_dead_requeue",
                "Move dead letters back to PENDING (`outbox_ids` or `all: true`)",
                {**_ok("Rows requeued", _obj({"requeued": {"type": "integer"}})), **_errors(*BODY, *BACKEND)},
                body=_body(
                    _obj({"outbox_ids": _array(ref("IdInput"), minItems=1), "all": {"type": "boolean"}}, [])
                ),
            )
        },
        "/api/internal/events/project": {
            "post": gated(
                "events_project",
                "Project event envelopes into the log (idempotent)",
                {
                    **_ok(
                        "Counts",
                        _obj({"projected": {"type": "integer"}, "duplicates": {"type": "integer"}}),
                    ),
                    **_errors(*BODY, "500", *BACKEND),
                },
                description="A batch the database refuses answers 500 `events/project failed: <e>`.",
                body=_body(_obj({"events": _array(ref("EventEnvelope"), minItems=1)})),
            )
        },
        "/api/internal/wallet/rotate-kek": {
            "post": gated(
                "wallet_rotate_kek",
                "Re-wrap data keys not under the current KEK version",
                {**_ok("Per-table progress", ref("Rotation")), **_errors(*BODY, "500", *BACKEND)},
                body=_body(
                    _obj(
                        {
                            "batch_size": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100},
                            "max_batches": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 1000000,
                                "default": 1000,
                            },
                            "credential_after": ref("IdInput"),
                            "keychain_after": {"type": "string"},
                        },
                        [],
                    ),
                    required=False,
                ),
            )
        },
        "/api/internal/wallet/key-status": {
            "get": gated(
                "wallet_key_status",
                "Rows per KEK version",
                {**_ok("Counts, keys sorted", ref("KeyStatus")), **_errors(*BACKEND)},
            )
        },
        "/api/internal/secret-audit": {
            "get": gated(
                "secret_audit",
                "The secret access audit, newest first",
                {**_ok("Audit rows", _obj({"rows": _array(ref("AuditRow"))})), **_errors("422", *BACKEND)},
                parameters=[
                    _query("credential", {"type": "string"}, "Credential name"),
                    _query("execution_id", ref("IdText"), "Execution id"),
                    _query("from", {"type": "string", "format": "date-time"}, "RFC 3339, inclusive"),
                    _query("to", {"type": "string", "format": "date-time"}, "RFC 3339"),
                    _query(
                        "limit", {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100}, "Rows"
                    ),
                ],
            )
        },
    }


# --------------------------------------------------------------------------------------------------
# Components

_ERROR_RESPONSES = {
    "400": "BadRequest",
    "403": "Forbidden",
    "404": "NotFound",
    "409": "Conflict",
    "413": "PayloadTooLarge",
    "422": "ValidationFailed",
    "500": "ServerError",
    "503": "Unavailable",
    "504": "Timeout",
}


def _responses() -> dict[str, Schema]:
    def error(description: str, schema: str, *, retry: bool = False) -> Schema:
        response: Schema = {"description": description, "content": {JSON: {"schema": ref(schema)}}}
        if retry:
            response["headers"] = {"Retry-After": _retry_after_header()}
        return response

    return {
        "BadRequest": error('The request is wrong: `{"detail": "<message>"}`', "Error"),
        "Forbidden": error(
            "Internal token gate: missing header, not `Bearer <token>`, or a different token", "Error"
        ),
        "NotFound": error('Not found: `{"detail": "<message>"}`', "Error"),
        "PayloadTooLarge": error(
            "The body is over the route's limit; the message states the limit and the variable that"
            ' sets it: `{"detail": "<message>"}`',
            "Error",
        ),
        "Conflict": error('Conflict: a message or `{"code": ...}`', "ServiceError", retry=True),
        "ValidationFailed": error(
            'Request validation (FastAPI list form), or a rule of the service (`{"detail": "<message>"}`)',
            "ValidationError",
        ),
        "ServerError": error('Failure: `{"detail": "<message>"}`', "Error"),
        "Unavailable": error(
            "A backend is down or saturated (`Retry-After`), or the internal API is not configured",
            "ServiceError",
            retry=True,
        ),
        "Timeout": error("The request ran longer than 1799 s", "Error"),
    }


def _error_schemas() -> dict[str, Schema]:
    return {
        "Error": _obj({"detail": {"type": "string"}}),
        "StructuredError": _obj({"detail": _obj({"code": {"type": "string"}}, [])}),
        "ServiceError": _obj(
            {"detail": {"anyOf": [{"type": "string"}, _obj({"code": {"type": "string"}}, ["code"])]}}
        ),
        "ValidationError": _obj(
            {"detail": {"anyOf": [{"type": "string"}, _array(ref("ValidationErrorItem"), minItems=1)]}}
        ),
        "ValidationErrorItem": _obj(
            {
                "type": {"type": "string"},
                "loc": _array({"type": ["string", "integer"]}),
                "msg": {"type": "string"},
                "input": {},
                "ctx": {"type": "object"},
            },
            ["type", "loc", "msg", "input"],
            additionalProperties=False,
        ),
    }


def _value_schemas() -> dict[str, Schema]:
    return {
        "IdInput": {
            "description": "A 64-bit id as a JSON number or a decimal string (http-api.md §1.7)",
            "anyOf": [
                {"type": "integer", "format": "int64", "minimum": -(2**63), "maximum": 2**63 - 1},
                {"type": "string", "pattern": "^-?[0-9]{1,19}$"},
            ],
        },
        "IdText": {
            "description": "A 64-bit id as decimal text",
            "type": "string",
            "pattern": "^-?[0-9]{1,19}$",
        },
        "IdString": {
            "description": "A 64-bit id sent as a decimal string",
            "type": "string",
            "pattern": "^-?[0-9]+$",
        },
        "IdNumber": {
            "description": "A 64-bit id sent as a JSON number",
            "type": "integer",
            "format": "int64",
        },
        "Timestamp": {"description": "RFC 3339, UTC, `Z` suffix", "type": "string", "format": "date-time"},
        "VersionInput": {
            "description": "A version number, a numeric string or `latest`",
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": 2147483647},
                {"type": "string", "pattern": "^[0-9]{1,9}$"},
                {"const": "latest"},
            ],
        },
        "HealthStatus": _obj({"status": {"const": "ok"}}),
        "PoolStatus": _obj(
            {
                "pool_min": {"type": "integer"},
                "pool_max": {"type": "integer"},
                "pool_size": {"type": "integer"},
                "pool_available": {"type": "integer"},
                "requests_waiting": {"type": "integer"},
                "utilization": {"type": "number"},
                "slots_available": {"type": "integer"},
                "status": {"type": "string"},
            }
        ),
    }


def _catalog_schemas() -> dict[str, Schema]:
    return {
        "RegisterRequest": _obj(
            {
                "content": {"type": "string", "description": "YAML text, base64 or raw"},
                "resource_type": {
                    "type": "string",
                    "default": "Playbook",
                    "description": "Hint; `kind:` wins",
                },
            },
            ["content"],
        ),
        "RegisterResponse": _obj(
            {
                "status": {"const": "success"},
                "message": {"type": "string"},
                "path": {"type": "string"},
                "version": {"type": "integer"},
                "catalog_id": ref("IdString"),
                "kind": {"type": "string"},
            }
        ),
        "RegisterBatchResponse": _obj(
            {
                "count": {"type": "integer"},
                "registered": {"type": "integer"},
                "failed": {"type": "integer"},
                "results": _array(
                    {
                        "anyOf": [
                            _obj(
                                {
                                    "index": {"type": "integer"},
                                    "status": {"const": "registered"},
                                    "path": {"type": "string"},
                                    "version": {"type": "integer"},
                                    "catalog_id": ref("IdString"),
                                    "kind": {"type": "string"},
                                }
                            ),
                            _obj(
                                {
                                    "index": {"type": "integer"},
                                    "status": {"const": "error"},
                                    "error": {"type": "string"},
                                }
                            ),
                        ]
                    }
                ),
            }
        ),
        "CatalogListRequest": _obj(
            {
                "resource_type": {"type": "string"},
                "path": {"type": "string", "description": "Exact path: all its versions"},
                "agent_only": {"type": "boolean", "default": False},
                "capability": {"type": "string"},
                "capabilities": _array({"type": "string"}),
                "include_archived": {"type": "boolean", "default": False},
            },
            [],
        ),
        "CatalogEntry": _obj(
            {
                "catalog_id": ref("IdString"),
                "path": {"type": "string"},
                "version": {"type": "integer"},
                "kind": {"type": "string"},
                "content": _nullable({"type": "string"}),
                "layout": {},
                "payload": {},
                "meta": _nullable({"type": "object"}),
                "created_at": ref("Timestamp"),
            }
        ),
        "CatalogChange": _obj(
            {
                "status": {"const": "success"},
                "message": {"type": "string"},
                "path": {"type": "string"},
                "deleted": _array(_obj({"catalog_id": ref("IdString"), "version": {"type": "integer"}})),
                "count": {"type": "integer"},
            }
        ),
        "UiSchema": {
            "description": (
                "The entry's identity and a JSON-Schema-like form of its `workload` (keys decided by the"
                " catalog service; see docs/decisions.md)"
            ),
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "version": {"type": "integer"},
                "catalog_id": ref("IdString"),
            },
        },
    }


def _execution_schemas() -> dict[str, Schema]:
    timing = {
        "start_time": _nullable(ref("Timestamp")),
        "end_time": _nullable(ref("Timestamp")),
        "duration_seconds": _nullable({"type": "number"}),
        "duration_human": _nullable({"type": "string"}),
    }
    entry = {
        "execution_id": ref("IdString"),
        "catalog_id": {"type": "string", "description": "Empty when unknown"},
        "path": {"type": "string"},
        "version": {"type": "integer"},
        "status": ref("ExecutionStatusName"),
        **timing,
        "progress": {"type": "integer", "enum": [0, 100]},
        "result": {"type": "null"},
        "error": _nullable({"type": "string"}),
        "parent_execution_id": _nullable(ref("IdString")),
    }
    return {
        "ExecutionStatusName": {"type": "string", "enum": ["RUNNING", "COMPLETED", "FAILED", "CANCELLED"]},
        "ExecuteRequest": _obj(
            {
                "path": {"type": "string", "description": "Catalog path (one of path/catalog_id)"},
                "catalog_id": ref("IdInput"),
                "version": {
                    "description": "Pins the version with `path`; missing: the latest",
                    "anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^[0-9]{1,9}$"}],
                },
                "resource_kind": {"type": "string", "description": "`playbook` or `agent`"},
                "workload": {"type": "object", "description": "Merged over the playbook's `workload`"},
                "payload": {"type": "object", "description": "Alias of `workload`"},
                "parent_execution_id": ref("IdInput"),
                "trace": _obj(
                    {
                        "traceparent": {"type": "string"},
                        "tracestate": {"type": "string"},
                        "baggage": {"type": "string"},
                    },
                    [],
                ),
                "execution_pool": {"type": "string", "description": "Routes every command to this pool"},
            },
            [],
        ),
        "ExecuteResponse": _obj(
            {
                "execution_id": ref("IdString"),
                "status": {"const": "started"},
                "commands_generated": {"type": "integer"},
            }
        ),
        "ExecuteBatchResponse": _obj(
            {
                "count": {"type": "integer"},
                "started": {"type": "integer"},
                "duplicates": {"type": "integer"},
                "failed": {"type": "integer"},
                "results": _array(
                    _obj(
                        {
                            "index": {"type": "integer"},
                            "status": {"type": "string", "enum": ["started", "error", "duplicate"]},
                            "execution_id": ref("IdString"),
                            "commands_generated": {"type": "integer"},
                            "error": {"type": "string"},
                        },
                        ["index", "status", "commands_generated"],
                    )
                ),
            }
        ),
        "ExecutionEntry": _obj(entry),
        "ExecutionDetail": _obj(
            {
                **entry,
                "events": _array(ref("Event")),
                "events_included": {"type": "boolean"},
                "events_endpoint": {"type": "string"},
                "pagination": _nullable(ref("Pagination")),
            }
        ),
        "Pagination": _obj(
            {
                "page": {"type": "integer"},
                "page_size": {"type": "integer"},
                "total_events": {"type": "integer"},
                "total_pages": {"type": "integer"},
                "has_next": {"type": "boolean"},
                "has_prev": {"type": "boolean"},
            }
        ),
        "Event": _obj(
            {
                "execution_id": ref("IdString"),
                "event_id": ref("IdNumber"),
                "event_type": {"type": "string"},
                "node_id": _nullable({"type": "string"}),
                "node_name": _nullable({"type": "string"}),
                "status": _nullable({"type": "string"}),
                "created_at": _nullable(ref("Timestamp")),
                "timestamp": _nullable(ref("Timestamp")),
                "context": {},
                "result": {},
                "error": _nullable({"type": "string"}),
                "catalog_id": _nullable(ref("IdString")),
                "parent_execution_id": _nullable(ref("IdString")),
                "parent_event_id": _nullable(ref("IdString")),
                "duration": _nullable({"type": "number"}),
            }
        ),
        "RawEventPage": _obj(
            {
                "execution_id": ref("IdString"),
                "path": {"type": "string"},
                "status": {"type": "string"},
                "events": _array(
                    _obj(
                        {
                            "event_id": ref("IdNumber"),
                            "event_type": {"type": "string"},
                            "node_id": _nullable({"type": "string"}),
                            "node_name": _nullable({"type": "string"}),
                            "status": _nullable({"type": "string"}),
                            "created_at": _nullable(ref("Timestamp")),
                            "context": {},
                            "result": {},
                            "error": _nullable({"type": "string"}),
                            "catalog_id": ref("IdNumber"),
                            "parent_execution_id": _nullable(ref("IdNumber")),
                            "parent_event_id": _nullable(ref("IdNumber")),
                            "duration": _nullable({"type": "number"}),
                            "execution_id": ref("IdString"),
                            "timestamp": _nullable(ref("Timestamp")),
                        }
                    )
                ),
                "pagination": ref("Pagination"),
            }
        ),
        "ExecutionStatus": _obj(
            {
                "execution_id": ref("IdString"),
                "current_step": _nullable({"type": "string"}),
                "completed_steps": _array({"type": "string"}),
                "failed": {"type": "boolean"},
                "completed": {"type": "boolean"},
                "completion_inferred": {"type": "boolean"},
                "variables": {"type": "object"},
                **timing,
            }
        ),
        "CancelResponse": _obj(
            {
                "status": {"type": "string", "enum": ["cancelled", "already_completed"]},
                "execution_id": ref("IdString"),
                "cancelled_executions": _array(ref("IdString")),
                "message": {"type": "string"},
            }
        ),
        "CancellationCheck": _obj(
            {
                "execution_id": ref("IdString"),
                "status": ref("ExecutionStatusName"),
                "event_type": {"type": "string"},
                "cancelled": {"type": "boolean"},
                "completed": {"type": "boolean"},
                "failed": {"type": "boolean"},
            }
        ),
        "FinalizeResponse": _obj(
            {
                "status": {"type": "string", "enum": ["finalized", "already_completed", "not_found"]},
                "execution_id": ref("IdString"),
                "message": {"type": "string"},
            }
        ),
        "CleanupResponse": _obj(
            {
                "cancelled_count": {"type": "integer"},
                "execution_ids": _array(ref("IdString")),
                "message": {"type": "string"},
            }
        ),
    }


def _event_schemas() -> dict[str, Schema]:
    item = {
        "step": {"type": "string", "description": "Step name (alias `node_name`; `step` wins)"},
        "node_name": {"type": "string"},
        "event_type": {
            "type": "string",
            "description": "Dotted spelling preferred (alias `name`; `name` wins)",
        },
        "name": {"type": "string"},
        "payload": {"type": "object", "description": "Alias `context`; `payload` wins"},
        "context": {"type": "object"},
        "meta": {"type": "object"},
    }
    return {
        "WorkerEvent": _obj(
            {
                "execution_id": ref("IdInput"),
                **item,
                "worker_id": {"type": "string"},
                "actionable": {"type": "boolean", "default": True},
                "informative": {"type": "boolean", "default": True},
            },
            ["execution_id", "step", "event_type"],
        ),
        "EmitResponse": _obj(
            {
                "status": {"const": "ok"},
                "event_id": ref("IdNumber"),
                "commands_generated": {"type": "integer"},
            }
        ),
        "EventBatchRequest": _obj(
            {
                "execution_id": ref("IdInput"),
                "worker_id": {"type": "string"},
                "catalog_id": ref("IdInput"),
                "events": _array(
                    _obj(
                        {
                            **item,
                            "actionable": {"type": "boolean", "default": False},
                            "informative": {"type": "boolean", "default": True},
                        },
                        ["step", "event_type"],
                    ),
                    maxItems=256,
                ),
            },
            ["execution_id", "events"],
        ),
        "EventBatchResponse": _obj(
            {
                "status": {"const": "accepted"},
                "request_id": {"type": "string"},
                "event_ids": _array(ref("IdNumber")),
                "commands_generated": {"type": "integer"},
                "queue_depth": {"type": "integer"},
                "duplicate": {"type": "boolean"},
                "idempotency_key": _nullable({"type": "string"}),
            }
        ),
        "EventBatchStatus": {
            "description": "The recorded batch (keys decided by the events service; see docs/decisions.md)",
            "type": "object",
            "properties": {
                "request_id": {"type": "string"},
                "execution_id": ref("IdString"),
                "event_ids": _array(ref("IdNumber")),
            },
            "required": ["request_id"],
        },
        "EventEnvelope": _obj(
            {
                "event_id": ref("IdInput"),
                "execution_id": ref("IdInput"),
                "catalog_id": ref("IdInput"),
                "parent_event_id": ref("IdInput"),
                "prev_event_id": ref("IdInput"),
                "event_type": {"type": "string"},
                "node_id": {"type": "string"},
                "node_name": {"type": "string"},
                "node_type": {"type": "string"},
                "status": {"type": "string"},
                "duration": {"type": "number"},
                "timestamp": {"type": "string", "format": "date-time"},
                "payload": {"type": "object"},
                "context": {"type": "object"},
                "result": {"type": "object"},
                "meta": {"type": "object"},
                "stack_trace": {"type": "string"},
                "error": {"type": "string"},
                "trace_component": {"type": "string"},
            },
            ["event_id"],
        ),
    }


def _command_schemas() -> dict[str, Schema]:
    command = {
        "execution_id": ref("IdNumber"),
        "node_id": {"type": "string"},
        "node_name": {"type": "string"},
        "action": {"type": "string", "description": "The tool kind"},
        "context": _obj(
            {"tool_config": {}, "input": {}, "render_context": {}, "spec": {}},
            [],
            description="http-api.md §13.4",
        ),
        "meta": _obj(
            {
                "command_id": ref("IdNumber"),
                "step": {"type": "string"},
                "tool_kind": {"type": "string"},
                "max_attempts": {"type": "integer"},
                "attempt": {"type": "integer"},
                "execution_id": ref("IdString"),
                "catalog_id": ref("IdString"),
                "actionable": {"type": "boolean"},
            },
            [],
            description="http-api.md §13.4",
        ),
    }
    return {
        "Command": _obj(command),
        "ClaimedCommand": _obj({"status": {"const": "ok"}, "event_id": ref("IdNumber"), **command}),
    }


def _runtime_schemas() -> dict[str, Schema]:
    runtime_value = {"anyOf": [{"type": "string"}, {"type": "object"}, {"type": "null"}]}
    return {
        "PoolRegistration": _obj(
            {
                "name": {"type": "string", "description": "Trimmed; unique per kind"},
                "kind": {"type": "string", "description": "Forced to `worker_pool` here"},
                "component_type": {"type": "string", "description": "Alias of `kind`"},
                "runtime": {"anyOf": [{"type": "string"}, {"type": "object"}]},
                "uri": {"type": "string"},
                "base_url": {"type": "string", "description": "Alias of `uri`"},
                "status": {"type": "string", "default": "ready"},
                "capacity": {"type": "integer", "minimum": 0},
                "labels": {"type": "object"},
                "pid": {"type": "integer"},
                "hostname": {"type": "string"},
                "meta": {"type": "object"},
            },
            ["name"],
        ),
        "PoolRegistered": _obj(
            {
                "status": {"const": "ok"},
                "name": {"type": "string"},
                "runtime_id": ref("IdString"),
                "runtime": runtime_value,
                "kind": {"type": "string"},
            }
        ),
        "PoolDeregistered": _obj(
            {
                "status": {"const": "ok"},
                "name": {"type": "string"},
                "runtime_id": {"type": "null"},
                "runtime": {"type": "null"},
                "kind": {"type": "string"},
            }
        ),
        "PoolHeartbeat": _obj(
            {
                "status": {"type": "string", "enum": ["ok", "recreated"]},
                "name": _nullable({"type": "string"}),
                "runtime_id": _nullable(ref("IdString")),
                "runtime": runtime_value,
            }
        ),
        "PoolList": _obj(
            {
                "items": _array(
                    _obj(
                        {
                            "name": {"type": "string"},
                            "runtime": _nullable({"type": "object"}),
                            "status": {"type": "string"},
                            "capacity": _nullable({"type": "integer"}),
                            "labels": _nullable({"type": "object"}),
                            "heartbeat": _nullable(ref("Timestamp")),
                            "created_at": ref("Timestamp"),
                            "updated_at": ref("Timestamp"),
                        }
                    )
                ),
                "count": {"type": "integer"},
                "runtime": _nullable({"type": "string"}),
                "status": _nullable({"type": "string"}),
                "error": _nullable({"type": "string"}),
            }
        ),
        "ShardInfo": _obj(
            {
                "execution_id": ref("IdString"),
                "shard_count": {"type": "integer"},
                "shard_index": {"type": "integer"},
                "source": {"const": "noetl-server"},
                "hash_function": {"const": "twox_hash::XxHash64"},
                "seed": {"const": 0},
                "server_config": _obj(
                    {"shard_index": {"type": "integer"}, "shard_count": {"type": "integer"}}
                ),
            }
        ),
        "RuntimeContract": _obj(
            {
                "contract_version": {"type": "string"},
                "api_version": {"type": "string"},
                "server_version": {"type": "string"},
                "gateway_version": {"type": "string"},
                "summary": {"type": "string"},
                "auth": _obj(
                    {
                        "mode": {"type": "string", "enum": ["none", "session", "bearer"]},
                        "accepted_headers": _array({"type": "string"}),
                    }
                ),
                "routes": {
                    "type": "object",
                    "description": '`"METHOD /path"` of every route served, by group',
                    "additionalProperties": _array({"type": "string"}),
                },
                "proxy_contract": _obj(
                    {"incoming_prefix": {"type": "string"}, "upstream_prefix": {"type": "string"}}
                ),
                "cli_operation_mapping": {"type": "object", "additionalProperties": {"type": "string"}},
                "auth0": _obj(
                    {
                        "domain": {"type": "string"},
                        "client_id": {"type": "string"},
                        "redirect_uri": {"type": "string"},
                        "audience": {"type": "string"},
                    },
                    ["domain"],
                    description="Only when GATEWAY_AUTH0_DOMAIN is set; empty values omitted",
                ),
            },
            [
                "contract_version",
                "api_version",
                "server_version",
                "gateway_version",
                "summary",
                "auth",
                "routes",
                "proxy_contract",
                "cli_operation_mapping",
            ],
        ),
    }


def _variable_schemas() -> dict[str, Schema]:
    value = {
        "value": {},
        "type": {"type": "string", "enum": VAR_TYPES},
        "source_step": _nullable({"type": "string"}),
        "created_at": ref("Timestamp"),
        "accessed_at": _nullable(ref("Timestamp")),
        "access_count": {"type": "integer"},
    }
    return {
        "VariableMap": _obj(
            {
                "execution_id": ref("IdNumber"),
                "variables": {"type": "object", "additionalProperties": _obj(value)},
                "count": {"type": "integer"},
            }
        ),
        "Variable": _obj({"execution_id": ref("IdNumber"), "var_name": {"type": "string"}, **value}),
        "VariablesSet": _obj(
            {
                "execution_id": ref("IdNumber"),
                "variables_set": {"type": "integer"},
                "var_names": _array({"type": "string"}),
            }
        ),
    }


def _credential_schemas() -> dict[str, Schema]:
    return {
        "CredentialRequest": _obj(
            {
                "name": {"type": "string", "minLength": 1, "description": "Trimmed, non-empty"},
                "type": {"type": "string", "default": "generic"},
                "credential_type": {"type": "string", "description": "Alias of `type` (wins)"},
                "data": {"type": "object", "description": "Encrypted at rest"},
                "meta": _nullable({"type": "object"}),
                "tags": {
                    "anyOf": [
                        _array({"type": "string"}),
                        {"type": "string", "description": "Comma-separated"},
                    ]
                },
                "description": _nullable({"type": "string"}),
            },
            ["name", "data"],
        ),
        "Credential": _obj(
            {
                "id": ref("IdString"),
                "name": {"type": "string"},
                "meta": _nullable({"type": "object"}),
                "tags": _nullable(_array({"type": "string"})),
                "description": _nullable({"type": "string"}),
                "created_at": ref("Timestamp"),
                "updated_at": ref("Timestamp"),
                "data": _nullable({"type": "object"}),
                "type": {"type": "string"},
            }
        ),
        "CredentialList": _obj(
            {
                "items": _array(ref("Credential")),
                "filter": _obj({"type": _nullable({"type": "string"}), "q": _nullable({"type": "string"})}),
            }
        ),
        "KeychainRequest": _obj(
            {
                "token_data": {"type": "object"},
                "credential_type": {"type": "string"},
                "cache_type": {"type": "string", "enum": ["token", "secret"], "default": "token"},
                "scope_type": {"type": "string", "enum": SCOPE_TYPES, "default": "global"},
                "execution_id": ref("IdInput"),
                "parent_execution_id": ref("IdInput"),
                "ttl_seconds": {"type": "integer", "description": "Wins over `expires_at`"},
                "expires_at": {"type": "string", "format": "date-time"},
                "auto_renew": {"type": "boolean", "default": False},
                "renew_config": _nullable({"type": "object"}),
            },
            ["token_data", "credential_type"],
        ),
        "KeychainCached": _obj(
            {
                "status": {"const": "success"},
                "message": {"type": "string"},
                "keychain_name": {"type": "string"},
                "catalog_id": ref("IdNumber"),
                "cache_key": {"type": "string"},
                "expires_at": ref("Timestamp"),
                "ttl_seconds": {"type": "integer"},
                "auto_renew": {"type": "boolean"},
            }
        ),
        "KeychainRead": _obj(
            {
                "status": {"type": "string", "enum": ["success", "expired", "not_found"]},
                "keychain_name": {"type": "string"},
                "catalog_id": ref("IdNumber"),
                "cache_key": _nullable({"type": "string"}),
                "token_data": _nullable({"type": "object"}),
                "credential_type": _nullable({"type": "string"}),
                "cache_type": _nullable({"type": "string"}),
                "scope_type": _nullable({"type": "string"}),
                "expires_at": _nullable(ref("Timestamp")),
                "ttl_seconds": _nullable({"type": "number"}),
                "accessed_at": _nullable(ref("Timestamp")),
                "access_count": _nullable({"type": "integer"}),
                "auto_renew": _nullable({"type": "boolean"}),
                "renew_config": _nullable({"type": "object"}),
                "expired": _nullable({"type": "boolean"}),
            }
        ),
        "KeychainList": _obj(
            {
                "status": {"const": "success"},
                "catalog_id": ref("IdNumber"),
                "entries": _array(
                    _obj(
                        {
                            "keychain_name": {"type": "string"},
                            "cache_key": {"type": "string"},
                            "credential_type": {"type": "string"},
                            "cache_type": {"type": "string"},
                            "scope_type": {"type": "string"},
                            "expires_at": ref("Timestamp"),
                            "auto_renew": {"type": "boolean"},
                            "access_count": {"type": "integer"},
                        }
                    )
                ),
                "count": {"type": "integer"},
            }
        ),
    }


def _result_schemas() -> dict[str, Schema]:
    return {
        "ResultRequest": _obj(
            {
                "name": {"type": "string"},
                "data": {"description": "Any JSON value"},
                "scope": {"type": "string", "enum": RESULT_SCOPES, "default": "execution"},
                "store": {"type": "string", "enum": RESULT_STORES},
                "ttl": {"type": "string", "description": "`30m`, `1h`, `2d`, `1y`, seconds or `forever`"},
                "source_step": {"type": "string"},
                "correlation": {"type": "object"},
                "extracted": {"type": "object"},
                "compress": {"type": "boolean", "default": False},
            },
            ["name", "data"],
        ),
        "ResultStored": _obj(
            {
                "ref": {"type": "string"},
                "store": {"type": "string"},
                "scope": {"type": "string"},
                "expires_at": _nullable(ref("Timestamp")),
                "bytes": {"type": "integer"},
                "sha256": {"type": "string"},
            }
        ),
    }


def _database_schemas() -> dict[str, Schema]:
    tables = _array({"type": "string"})
    return {
        "SqlRequest": _obj(
            {
                "query": {"type": "string", "description": "Trimmed"},
                "query_base64": {"type": "string"},
                "procedure": {"type": "string"},
                "parameters": {"description": "An array, an object or a scalar"},
                "schema": {"type": "string", "description": "Sets `search_path`"},
                "database": {"type": "string"},
                "credential": {"type": "string"},
                "connection_string": {"type": "string"},
            },
            [],
        ),
        "SqlResult": _obj(
            {
                "status": {"type": "string", "enum": ["ok", "error"]},
                "result": _nullable(_array({"type": "object"})),
                "error": _nullable({"type": "string"}),
            }
        ),
        "SchemaInit": _obj(
            {
                "status": {"type": "string", "enum": ["ok", "warning"]},
                "message": {"type": "string"},
                "tables": tables,
                "missing": tables,
            },
            ["status", "message", "tables"],
        ),
        "SchemaValidation": _obj(
            {
                "status": {"type": "string", "enum": ["ok", "error"]},
                "valid": {"type": "boolean"},
                "tables": tables,
                "missing": tables,
                "all_tables": tables,
            }
        ),
    }


def _internal_schemas() -> dict[str, Schema]:
    rotation = _obj(
        {
            "processed": {"type": "integer"},
            "rewrapped": {"type": "integer"},
            "skipped": {"type": "integer"},
            "failed": {"type": "integer"},
            "last_id": _nullable({"type": "string"}),
        }
    )
    counts = {"type": "object", "additionalProperties": {"type": "integer"}}
    return {
        "OutboxClaim": _obj(
            {
                "rows": _array(
                    _obj(
                        {
                            "outbox_id": ref("IdNumber"),
                            "event_id": ref("IdNumber"),
                            "execution_id": ref("IdNumber"),
                            "subject": {"type": "string"},
                            "payload": {},
                            "payload_codec": {"type": "string"},
                            "attempts": {"type": "integer"},
                        }
                    )
                ),
                "claimed": {"type": "integer"},
            }
        ),
        "DeadLetterPage": _obj(
            {
                "rows": _array(
                    _obj(
                        {
                            "outbox_id": ref("IdNumber"),
                            "event_id": ref("IdNumber"),
                            "execution_id": ref("IdNumber"),
                            "subject": {"type": "string"},
                            "attempts": {"type": "integer"},
                            "last_error": _nullable({"type": "string"}),
                            "created_at": _nullable(ref("Timestamp")),
                            "dead_at": _nullable(ref("Timestamp")),
                        }
                    )
                ),
                "dead": {"type": "integer"},
                "next_after": _nullable(ref("IdNumber")),
            }
        ),
        "Rotation": _obj({"credential": rotation, "keychain": rotation}),
        "KeyStatus": _obj({"credential": counts, "keychain": counts}),
        "AuditRow": _obj(
            {
                "audit_id": ref("IdString"),
                "occurred_at": _nullable(ref("Timestamp")),
                "credential": {"type": "string"},
                "operation": {"type": "string"},
                "outcome": {"type": "string"},
                "worker_id": _nullable({"type": "string"}),
                "execution_id": _nullable(ref("IdString")),
                "parent_execution_id": _nullable(ref("IdString")),
                "server_region": _nullable({"type": "string"}),
                "broker_region": _nullable({"type": "string"}),
                "kek_version": _nullable({"type": "string"}),
                "notes": _nullable({"type": "string"}),
            }
        ),
    }


# --------------------------------------------------------------------------------------------------
# The document


def document() -> Schema:
    paths: dict[str, Schema] = {}
    for area in (
        _health_paths,
        _catalog_paths,
        _execution_paths,
        _event_paths,
        _command_paths,
        _runtime_paths,
        _variable_paths,
        _credential_paths,
        _result_paths,
        _database_paths,
        _internal_paths,
    ):
        paths.update(area())
    schemas: dict[str, Schema] = {}
    for group in (
        _error_schemas,
        _value_schemas,
        _catalog_schemas,
        _execution_schemas,
        _event_schemas,
        _command_schemas,
        _runtime_schemas,
        _variable_schemas,
        _credential_schemas,
        _result_schemas,
        _database_schemas,
        _internal_schemas,
    ):
        schemas.update(group())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "NoETL control plane HTTP API",
            "version": BUILD_VERSION,
            "description": DESCRIPTION,
        },
        "tags": TAGS,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": _responses(),
            "securitySchemes": {
                "internalToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The service-account token configured as NOETL_INTERNAL_API_TOKEN",
                }
            },
        },
    }


def render() -> str:
    """The document as `docs/openapi.json` holds it: indented for reading, one trailing newline."""
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    """`python -m gateway_http.openapi`: rewrite docs/openapi.json from the code."""
    DOCS_FILE.write_text(render())
    print(f"wrote {DOCS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
