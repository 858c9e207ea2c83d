"""Component schemas of catalog entries, executions, events and commands (http-api.md §3 to §6)."""

from __future__ import annotations

from gateway_http.openapi.build import Schema, array, nullable, obj, ref


def _catalog_schemas() -> dict[str, Schema]:
    return {
        "RegisterRequest": obj(
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
        "RegisterResponse": obj(
            {
                "status": {"const": "success"},
                "message": {"type": "string"},
                "path": {"type": "string"},
                "version": {"type": "integer"},
                "catalog_id": ref("IdString"),
                "kind": {"type": "string"},
            }
        ),
        "RegisterBatchResponse": obj(
            {
                "count": {"type": "integer"},
                "registered": {"type": "integer"},
                "failed": {"type": "integer"},
                "results": array(
                    {
                        "anyOf": [
                            obj(
                                {
                                    "index": {"type": "integer"},
                                    "status": {"const": "registered"},
                                    "path": {"type": "string"},
                                    "version": {"type": "integer"},
                                    "catalog_id": ref("IdString"),
                                    "kind": {"type": "string"},
                                }
                            ),
                            obj(
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
        "CatalogListRequest": obj(
            {
                "resource_type": {"type": "string"},
                "path": {"type": "string", "description": "Exact path: all its versions"},
                "agent_only": {"type": "boolean", "default": False},
                "capability": {"type": "string"},
                "capabilities": array({"type": "string"}),
                "include_archived": {"type": "boolean", "default": False},
            },
            [],
        ),
        "CatalogEntry": obj(
            {
                "catalog_id": ref("IdString"),
                "path": {"type": "string"},
                "version": {"type": "integer"},
                "kind": {"type": "string"},
                "content": nullable({"type": "string"}),
                "layout": {},
                "payload": {},
                "meta": nullable({"type": "object"}),
                "created_at": ref("Timestamp"),
            }
        ),
        "CatalogChange": obj(
            {
                "status": {"const": "success"},
                "message": {"type": "string"},
                "path": {"type": "string"},
                "deleted": array(obj({"catalog_id": ref("IdString"), "version": {"type": "integer"}})),
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
        "start_time": nullable(ref("Timestamp")),
        "end_time": nullable(ref("Timestamp")),
        "duration_seconds": nullable({"type": "number"}),
        "duration_human": nullable({"type": "string"}),
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
        "error": nullable({"type": "string"}),
        "parent_execution_id": nullable(ref("IdString")),
    }
    return {
        "ExecutionStatusName": {"type": "string", "enum": ["RUNNING", "COMPLETED", "FAILED", "CANCELLED"]},
        "ExecuteRequest": obj(
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
                "trace": obj(
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
        "ExecuteResponse": obj(
            {
                "execution_id": ref("IdString"),
                "status": {"const": "started"},
                "commands_generated": {"type": "integer"},
            }
        ),
        "ExecuteBatchResponse": obj(
            {
                "count": {"type": "integer"},
                "started": {"type": "integer"},
                "duplicates": {"type": "integer"},
                "failed": {"type": "integer"},
                "results": array(
                    obj(
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
        "ExecutionEntry": obj(entry),
        "ExecutionDetail": obj(
            {
                **entry,
                "events": array(ref("Event")),
                "events_included": {"type": "boolean"},
                "events_endpoint": {"type": "string"},
                "pagination": nullable(ref("Pagination")),
            }
        ),
        "Pagination": obj(
            {
                "page": {"type": "integer"},
                "page_size": {"type": "integer"},
                "total_events": {"type": "integer"},
                "total_pages": {"type": "integer"},
                "has_next": {"type": "boolean"},
                "has_prev": {"type": "boolean"},
            }
        ),
        "Event": obj(
            {
                "execution_id": ref("IdString"),
                "event_id": ref("IdNumber"),
                "event_type": {"type": "string"},
                "node_id": nullable({"type": "string"}),
                "node_name": nullable({"type": "string"}),
                "status": nullable({"type": "string"}),
                "created_at": nullable(ref("Timestamp")),
                "timestamp": nullable(ref("Timestamp")),
                "context": {},
                "result": {},
                "error": nullable({"type": "string"}),
                "catalog_id": nullable(ref("IdString")),
                "parent_execution_id": nullable(ref("IdString")),
                "parent_event_id": nullable(ref("IdString")),
                "duration": nullable({"type": "number"}),
            }
        ),
        "RawEventPage": obj(
            {
                "execution_id": ref("IdString"),
                "path": {"type": "string"},
                "status": {"type": "string"},
                "events": array(
                    obj(
                        {
                            "event_id": ref("IdNumber"),
                            "event_type": {"type": "string"},
                            "node_id": nullable({"type": "string"}),
                            "node_name": nullable({"type": "string"}),
                            "status": nullable({"type": "string"}),
                            "created_at": nullable(ref("Timestamp")),
                            "context": {},
                            "result": {},
                            "error": nullable({"type": "string"}),
                            "catalog_id": ref("IdNumber"),
                            "parent_execution_id": nullable(ref("IdNumber")),
                            "parent_event_id": nullable(ref("IdNumber")),
                            "duration": nullable({"type": "number"}),
                            "execution_id": ref("IdString"),
                            "timestamp": nullable(ref("Timestamp")),
                        }
                    )
                ),
                "pagination": ref("Pagination"),
            }
        ),
        "ExecutionStatus": obj(
            {
                "execution_id": ref("IdString"),
                "current_step": nullable({"type": "string"}),
                "completed_steps": array({"type": "string"}),
                "failed": {"type": "boolean"},
                "completed": {"type": "boolean"},
                "completion_inferred": {"type": "boolean"},
                "variables": {"type": "object"},
                **timing,
            }
        ),
        "CancelResponse": obj(
            {
                "status": {"type": "string", "enum": ["cancelled", "already_completed"]},
                "execution_id": ref("IdString"),
                "cancelled_executions": array(ref("IdString")),
                "message": {"type": "string"},
            }
        ),
        "CancellationCheck": obj(
            {
                "execution_id": ref("IdString"),
                "status": ref("ExecutionStatusName"),
                "event_type": {"type": "string"},
                "cancelled": {"type": "boolean"},
                "completed": {"type": "boolean"},
                "failed": {"type": "boolean"},
            }
        ),
        "FinalizeResponse": obj(
            {
                "status": {"type": "string", "enum": ["finalized", "already_completed", "not_found"]},
                "execution_id": ref("IdString"),
                "message": {"type": "string"},
            }
        ),
        "CleanupResponse": obj(
            {
                "cancelled_count": {"type": "integer"},
                "execution_ids": array(ref("IdString")),
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
        "WorkerEvent": obj(
            {
                "execution_id": ref("IdInput"),
                **item,
                "worker_id": {"type": "string"},
                "actionable": {"type": "boolean", "default": True},
                "informative": {"type": "boolean", "default": True},
            },
            ["execution_id", "step", "event_type"],
        ),
        "EmitResponse": obj(
            {
                "status": {"const": "ok"},
                "event_id": ref("IdNumber"),
                "commands_generated": {"type": "integer"},
            }
        ),
        "EventBatchRequest": obj(
            {
                "execution_id": ref("IdInput"),
                "worker_id": {"type": "string"},
                "catalog_id": ref("IdInput"),
                "events": array(
                    obj(
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
        "EventBatchResponse": obj(
            {
                "status": {"const": "accepted"},
                "request_id": {"type": "string"},
                "event_ids": array(ref("IdNumber")),
                "commands_generated": {"type": "integer"},
                "queue_depth": {"type": "integer"},
                "duplicate": {"type": "boolean"},
                "idempotency_key": nullable({"type": "string"}),
            }
        ),
        "EventBatchStatus": {
            "description": "The recorded batch (keys decided by the events service; see docs/decisions.md)",
            "type": "object",
            "properties": {
                "request_id": {"type": "string"},
                "execution_id": ref("IdString"),
                "event_ids": array(ref("IdNumber")),
            },
            "required": ["request_id"],
        },
        "EventEnvelope": obj(
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
        "context": obj(
            {"tool_config": {}, "input": {}, "render_context": {}, "spec": {}},
            [],
            description="http-api.md §13.4",
        ),
        "meta": obj(
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
        "Command": obj(command),
        "ClaimedCommand": obj({"status": {"const": "ok"}, "event_id": ref("IdNumber"), **command}),
    }


def schemas() -> dict[str, Schema]:
    return {**_catalog_schemas(), **_execution_schemas(), **_event_schemas(), **_command_schemas()}
