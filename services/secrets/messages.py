"""Conversions between the wallet's domain values and `secrets_pb2` messages."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from noetl.v1 import secrets_pb2

from kernel import jsonutil
from kernel.wire import optional, timestamp
from services.secrets.audit import Reader
from services.secrets.rotation import TableReport
from services.secrets.store import AuditRecord, CredentialRow, KeychainRow


def _present(message: Any, **values: Any) -> None:
    for name, value in values.items():
        if value is not None:
            setattr(message, name, value)


def reader(accessor: secrets_pb2.Accessor) -> Reader:
    return Reader(
        worker_id=accessor.worker_id or None,
        caller=accessor.caller or "grpc",
        execution_id=optional(accessor, "execution_id"),
        parent_execution_id=optional(accessor, "parent_execution_id"),
        catalog_id=optional(accessor, "catalog_id"),
    )


def credential_message(row: CredentialRow, data: Any = None) -> secrets_pb2.Credential:
    message = secrets_pb2.Credential(
        id=row.id,
        name=row.name,
        type=row.type,
        meta_json=(row.meta or "").encode(),
        created_at=timestamp(row.created_at),
        updated_at=timestamp(row.updated_at),
        data_json=jsonutil.dumps(data),
    )
    if row.tags is not None:
        message.tags.values.extend(row.tags)
    _present(message, description=row.description)
    return message


def keychain_message(
    row: KeychainRow, data: Any = None, ttl_seconds: float = 0.0
) -> secrets_pb2.KeychainEntry:
    message = secrets_pb2.KeychainEntry(
        keychain_name=row.keychain_name,
        catalog_id=row.catalog_id,
        cache_key=row.cache_key,
        credential_type=row.credential_type,
        cache_type=row.cache_type,
        scope_type=row.scope_type,
        expires_at=timestamp(row.expires_at),
        access_count=row.access_count,
        auto_renew=row.auto_renew,
        renew_config_json=(row.renew_config or "").encode(),
        data_json=jsonutil.dumps(data),
        ttl_seconds=ttl_seconds,
    )
    _present(message, execution_id=row.execution_id, parent_execution_id=row.parent_execution_id)
    if row.created_at is not None:
        message.created_at.CopyFrom(timestamp(row.created_at))
    if row.accessed_at is not None:
        message.accessed_at.CopyFrom(timestamp(row.accessed_at))
    return message


def table_message(report: TableReport) -> secrets_pb2.TableRotation:
    return secrets_pb2.TableRotation(
        processed=report.processed,
        rewrapped=report.rewrapped,
        skipped=report.skipped,
        failed=report.failed,
        last_id=report.last_id,
        failures=dict(report.failures),
    )


def audit_message(record: AuditRecord) -> secrets_pb2.AuditRow:
    message = secrets_pb2.AuditRow(
        audit_id=record.audit_id,
        credential=record.credential,
        operation=record.operation,
        outcome=record.outcome,
    )
    if record.occurred_at is not None:
        message.occurred_at.CopyFrom(timestamp(record.occurred_at.astimezone(UTC)))
    _present(
        message,
        worker_id=record.worker_id,
        execution_id=record.execution_id,
        parent_execution_id=record.parent_execution_id,
        server_region=record.server_region,
        broker_region=record.broker_region,
        kek_version=record.kek_version,
        notes=record.notes,
    )
    return message
