"""Secrets wallet messages → the JSON objects of the contract, keys in contract order.

http-api.md §9 (credentials, keychain), §12.6-§12.8 (rotation, key status, audit), §13.5.
Secret data appears only where a read asked for it: a credential's `data` with
`include_data=true`, a keychain GET's `token_data`; lists never carry it.
"""

from __future__ import annotations

from typing import Any

from noetl.v1 import secrets_pb2

from gateway_http.formatting import timestamp
from kernel import jsonutil
from kernel.wire import optional


def _optional_time(message: Any, name: str) -> str | None:
    return timestamp(getattr(message, name)) if message.HasField(name) else None


def credential(item: secrets_pb2.Credential) -> dict[str, Any]:
    """§13.5; `type` last, as the reference serialises it."""
    return {
        "id": str(item.id),
        "name": item.name,
        "meta": jsonutil.loads(item.meta_json),
        "tags": list(item.tags.values) if item.HasField("tags") else None,
        "description": optional(item, "description"),
        "created_at": timestamp(item.created_at),
        "updated_at": timestamp(item.updated_at),
        "data": jsonutil.loads(item.data_json),
        "type": item.type,
    }


def credential_list(items: list[secrets_pb2.Credential], type_: str | None, q: str | None) -> dict[str, Any]:
    """§9.2: never with data, whatever the service sent."""
    return {
        "items": [{**credential(item), "data": None} for item in items],
        "filter": {"type": type_, "q": q},
    }


def keychain_cached(name: str, catalog_id: int, cached: secrets_pb2.SetKeychainResponse) -> dict[str, Any]:
    return {
        "status": "success",
        "message": f"Keychain entry '{name}' cached",
        "keychain_name": name,
        "catalog_id": catalog_id,
        "cache_key": cached.cache_key,
        "expires_at": timestamp(cached.expires_at),
        "ttl_seconds": cached.ttl_seconds,
        "auto_renew": cached.auto_renew,
    }


def keychain_read(name: str, catalog_id: int, read: secrets_pb2.GetKeychainResponse) -> dict[str, Any]:
    """§9.5 GET: `success` with token data, `expired` without (renew metadata reported), `not_found`."""
    body: dict[str, Any] = {
        "status": read.status,
        "keychain_name": name,
        "catalog_id": catalog_id,
        "cache_key": read.cache_key,
        "token_data": None,
        "credential_type": None,
        "cache_type": None,
        "scope_type": None,
        "expires_at": None,
        "ttl_seconds": None,
        "accessed_at": None,
        "access_count": None,
        "auto_renew": None,
        "renew_config": None,
        "expired": None,
    }
    entry = read.entry
    if read.status == "success":
        body.update(
            keychain_name=entry.keychain_name,
            catalog_id=entry.catalog_id,
            token_data=jsonutil.loads(entry.data_json),
            credential_type=entry.credential_type,
            cache_type=entry.cache_type,
            scope_type=entry.scope_type,
            expires_at=timestamp(entry.expires_at),
            ttl_seconds=entry.ttl_seconds,
            accessed_at=_optional_time(entry, "accessed_at"),
            access_count=entry.access_count,
            auto_renew=entry.auto_renew,
            renew_config=jsonutil.loads(entry.renew_config_json),
            expired=False,
        )
    elif read.status == "expired":
        body.update(
            keychain_name=entry.keychain_name,
            catalog_id=entry.catalog_id,
            auto_renew=entry.auto_renew,
            renew_config=jsonutil.loads(entry.renew_config_json),
            expired=True,
        )
    return body


def keychain_deleted(name: str, catalog_id: int, deleted: bool) -> dict[str, Any]:
    return {
        "status": "success" if deleted else "error",
        "message": "Keychain entry deleted successfully" if deleted else "Keychain entry not found",
        "keychain_name": name,
        "catalog_id": catalog_id,
    }


def keychain_list(catalog_id: int, entries: list[secrets_pb2.KeychainEntry]) -> dict[str, Any]:
    """§9.5 GET /catalog/{catalog_id}: metadata only, never token data."""
    items = [
        {
            "keychain_name": entry.keychain_name,
            "cache_key": entry.cache_key,
            "credential_type": entry.credential_type,
            "cache_type": entry.cache_type,
            "scope_type": entry.scope_type,
            "expires_at": timestamp(entry.expires_at),
            "auto_renew": entry.auto_renew,
            "access_count": entry.access_count,
        }
        for entry in entries
    ]
    return {"status": "success", "catalog_id": catalog_id, "entries": items, "count": len(items)}


def rotation(table: secrets_pb2.TableRotation) -> dict[str, Any]:
    return {
        "processed": table.processed,
        "rewrapped": table.rewrapped,
        "skipped": table.skipped,
        "failed": table.failed,
        "last_id": table.last_id or None,
    }


def key_counts(counts: Any) -> dict[str, int]:
    """A proto map as a JSON object with its keys sorted (§12.7)."""
    return {key: int(counts[key]) for key in sorted(counts)}


def audit_row(row: secrets_pb2.AuditRow) -> dict[str, Any]:
    """§12.8: ids as strings; never a secret value (the service stores none)."""
    execution_id = optional(row, "execution_id")
    parent = optional(row, "parent_execution_id")
    return {
        "audit_id": str(row.audit_id),
        "occurred_at": _optional_time(row, "occurred_at"),
        "credential": row.credential,
        "operation": row.operation,
        "outcome": row.outcome,
        "worker_id": optional(row, "worker_id"),
        "execution_id": None if execution_id is None else str(execution_id),
        "parent_execution_id": None if parent is None else str(parent),
        "server_region": optional(row, "server_region"),
        "broker_region": optional(row, "broker_region"),
        "kek_version": optional(row, "kek_version"),
        "notes": optional(row, "notes"),
    }
