"""Component schemas of worker pools, the runtime contract, variables, credentials and the
keychain, results, database utilities and the internal API (http-api.md §7 to §12)."""

from __future__ import annotations

from gateway_http.openapi.build import Schema, array, nullable, obj, ref

VAR_TYPES = ["user_defined", "step_result", "computed", "iterator_state"]
SCOPE_TYPES = ["global", "local", "shared"]
RESULT_SCOPES = ["step", "execution", "workflow", "permanent"]
RESULT_STORES = ["memory", "kv", "disk", "object", "s3", "gcs", "db", "duckdb", "eventlog"]


def _runtime_schemas() -> dict[str, Schema]:
    runtime_value = {"anyOf": [{"type": "string"}, {"type": "object"}, {"type": "null"}]}
    return {
        "PoolRegistration": obj(
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
        "PoolRegistered": obj(
            {
                "status": {"const": "ok"},
                "name": {"type": "string"},
                "runtime_id": ref("IdString"),
                "runtime": runtime_value,
                "kind": {"type": "string"},
            }
        ),
        "PoolDeregistered": obj(
            {
                "status": {"const": "ok"},
                "name": {"type": "string"},
                "runtime_id": {"type": "null"},
                "runtime": {"type": "null"},
                "kind": {"type": "string"},
            }
        ),
        "PoolHeartbeat": obj(
            {
                "status": {"type": "string", "enum": ["ok", "recreated"]},
                "name": nullable({"type": "string"}),
                "runtime_id": nullable(ref("IdString")),
                "runtime": runtime_value,
            }
        ),
        "PoolList": obj(
            {
                "items": array(
                    obj(
                        {
                            "name": {"type": "string"},
                            "runtime": nullable({"type": "object"}),
                            "status": {"type": "string"},
                            "capacity": nullable({"type": "integer"}),
                            "labels": nullable({"type": "object"}),
                            "heartbeat": nullable(ref("Timestamp")),
                            "created_at": ref("Timestamp"),
                            "updated_at": ref("Timestamp"),
                        }
                    )
                ),
                "count": {"type": "integer"},
                "runtime": nullable({"type": "string"}),
                "status": nullable({"type": "string"}),
                "error": nullable({"type": "string"}),
            }
        ),
        "ShardInfo": obj(
            {
                "execution_id": ref("IdString"),
                "shard_count": {"type": "integer"},
                "shard_index": {"type": "integer"},
                "source": {"const": "noetl-server"},
                "hash_function": {"const": "twox_hash::XxHash64"},
                "seed": {"const": 0},
                "server_config": obj(
                    {"shard_index": {"type": "integer"}, "shard_count": {"type": "integer"}}
                ),
            }
        ),
        "RuntimeContract": obj(
            {
                "contract_version": {"type": "string"},
                "api_version": {"type": "string"},
                "server_version": {"type": "string"},
                "gateway_version": {"type": "string"},
                "summary": {"type": "string"},
                "auth": obj(
                    {
                        "mode": {"type": "string", "enum": ["none", "session", "bearer"]},
                        "accepted_headers": array({"type": "string"}),
                    }
                ),
                "routes": {
                    "type": "object",
                    "description": '`"METHOD /path"` of every route served, by group',
                    "additionalProperties": array({"type": "string"}),
                },
                "proxy_contract": obj(
                    {"incoming_prefix": {"type": "string"}, "upstream_prefix": {"type": "string"}}
                ),
                "cli_operation_mapping": {"type": "object", "additionalProperties": {"type": "string"}},
                "auth0": obj(
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
        "source_step": nullable({"type": "string"}),
        "created_at": ref("Timestamp"),
        "accessed_at": nullable(ref("Timestamp")),
        "access_count": {"type": "integer"},
    }
    return {
        "VariableMap": obj(
            {
                "execution_id": ref("IdNumber"),
                "variables": {"type": "object", "additionalProperties": obj(value)},
                "count": {"type": "integer"},
            }
        ),
        "Variable": obj({"execution_id": ref("IdNumber"), "var_name": {"type": "string"}, **value}),
        "VariablesSet": obj(
            {
                "execution_id": ref("IdNumber"),
                "variables_set": {"type": "integer"},
                "var_names": array({"type": "string"}),
            }
        ),
    }


def _credential_schemas() -> dict[str, Schema]:
    return {
        "CredentialRequest": obj(
            {
                "name": {"type": "string", "minLength": 1, "description": "Trimmed, non-empty"},
                "type": {"type": "string", "default": "generic"},
                "credential_type": {"type": "string", "description": "Alias of `type` (wins)"},
                "data": {"type": "object", "description": "Encrypted at rest"},
                "meta": nullable({"type": "object"}),
                "tags": {
                    "anyOf": [
                        array({"type": "string"}),
                        {"type": "string", "description": "Comma-separated"},
                    ]
                },
                "description": nullable({"type": "string"}),
            },
            ["name", "data"],
        ),
        "Credential": obj(
            {
                "id": ref("IdString"),
                "name": {"type": "string"},
                "meta": nullable({"type": "object"}),
                "tags": nullable(array({"type": "string"})),
                "description": nullable({"type": "string"}),
                "created_at": ref("Timestamp"),
                "updated_at": ref("Timestamp"),
                "data": nullable({"type": "object"}),
                "type": {"type": "string"},
            }
        ),
        "CredentialList": obj(
            {
                "items": array(ref("Credential")),
                "filter": obj({"type": nullable({"type": "string"}), "q": nullable({"type": "string"})}),
            }
        ),
        "KeychainRequest": obj(
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
                "renew_config": nullable({"type": "object"}),
            },
            ["token_data", "credential_type"],
        ),
        "KeychainCached": obj(
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
        "KeychainRead": obj(
            {
                "status": {"type": "string", "enum": ["success", "expired", "not_found"]},
                "keychain_name": {"type": "string"},
                "catalog_id": ref("IdNumber"),
                "cache_key": nullable({"type": "string"}),
                "token_data": nullable({"type": "object"}),
                "credential_type": nullable({"type": "string"}),
                "cache_type": nullable({"type": "string"}),
                "scope_type": nullable({"type": "string"}),
                "expires_at": nullable(ref("Timestamp")),
                "ttl_seconds": nullable({"type": "number"}),
                "accessed_at": nullable(ref("Timestamp")),
                "access_count": nullable({"type": "integer"}),
                "auto_renew": nullable({"type": "boolean"}),
                "renew_config": nullable({"type": "object"}),
                "expired": nullable({"type": "boolean"}),
            }
        ),
        "KeychainList": obj(
            {
                "status": {"const": "success"},
                "catalog_id": ref("IdNumber"),
                "entries": array(
                    obj(
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
        "ResultRequest": obj(
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
        "ResultStored": obj(
            {
                "ref": {"type": "string"},
                "store": {"type": "string"},
                "scope": {"type": "string"},
                "expires_at": nullable(ref("Timestamp")),
                "bytes": {"type": "integer"},
                "sha256": {"type": "string"},
            }
        ),
    }


def _database_schemas() -> dict[str, Schema]:
    tables = array({"type": "string"})
    return {
        "SqlRequest": obj(
            {
                "query": {"type": "string", "description": "Trimmed"},
                "query_base64": {"type": "string"},
                "procedure": {"type": "string"},
                "parameters": {"description": "An array, an object or a scalar"},
                "schema": {"type": "string", "description": "Sets `search_path`"},
                "database": {"type": "string"},
                "credential": {"type": "string"},
                "connection_string": {"type": "string"},
                "shard": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "The shard whose database runs the SQL (0..N-1); needed on more than"
                    " one shard unless credential or connection_string is given (docs/sharding.md)",
                },
            },
            [],
        ),
        "SqlResult": obj(
            {
                "status": {"type": "string", "enum": ["ok", "error"]},
                "result": nullable(array({"type": "object"})),
                "error": nullable({"type": "string"}),
            }
        ),
        "SchemaInit": obj(
            {
                "status": {"type": "string", "enum": ["ok", "warning"]},
                "message": {"type": "string"},
                "tables": tables,
                "missing": tables,
            },
            ["status", "message", "tables"],
        ),
        "SchemaValidation": obj(
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
    rotation = obj(
        {
            "processed": {"type": "integer"},
            "rewrapped": {"type": "integer"},
            "skipped": {"type": "integer"},
            "failed": {"type": "integer"},
            "last_id": nullable({"type": "string"}),
        }
    )
    counts = {"type": "object", "additionalProperties": {"type": "integer"}}
    return {
        "OutboxClaim": obj(
            {
                "rows": array(
                    obj(
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
        "DeadLetterPage": obj(
            {
                "rows": array(
                    obj(
                        {
                            "outbox_id": ref("IdNumber"),
                            "event_id": ref("IdNumber"),
                            "execution_id": ref("IdNumber"),
                            "subject": {"type": "string"},
                            "attempts": {"type": "integer"},
                            "last_error": nullable({"type": "string"}),
                            "created_at": nullable(ref("Timestamp")),
                            "dead_at": nullable(ref("Timestamp")),
                        }
                    )
                ),
                "dead": {"type": "integer"},
                "next_after": nullable(ref("IdNumber")),
            }
        ),
        "Rotation": obj({"credential": rotation, "keychain": rotation}),
        "KeyStatus": obj({"credential": counts, "keychain": counts}),
        "AuditRow": obj(
            {
                "audit_id": ref("IdString"),
                "occurred_at": nullable(ref("Timestamp")),
                "credential": {"type": "string"},
                "operation": {"type": "string"},
                "outcome": {"type": "string"},
                "worker_id": nullable({"type": "string"}),
                "execution_id": nullable(ref("IdString")),
                "parent_execution_id": nullable(ref("IdString")),
                "server_region": nullable({"type": "string"}),
                "broker_region": nullable({"type": "string"}),
                "kek_version": nullable({"type": "string"}),
                "notes": nullable({"type": "string"}),
            }
        ),
    }


def schemas() -> dict[str, Schema]:
    return {
        **_runtime_schemas(),
        **_variable_schemas(),
        **_credential_schemas(),
        **_result_schemas(),
        **_database_schemas(),
        **_internal_schemas(),
    }
