"""SQL of the secrets wallet: noetl.credential, noetl.keychain and noetl.secret_audit only.

Values of `data_encrypted` are envelopes; this module never sees plaintext.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from kernel.db import connection_errors
from kernel.jsonutil import dumps_text
from kernel.timeutil import as_utc


@dataclass(frozen=True, slots=True)
class CredentialRow:
    id: int
    name: str
    type: str
    meta: str | None  # raw JSON text
    tags: list[str] | None
    description: str | None
    created_at: datetime
    updated_at: datetime
    data_encrypted: str  # "" when the query did not select it


@dataclass(frozen=True, slots=True)
class KeychainRow:
    cache_key: str
    keychain_name: str
    catalog_id: int
    credential_type: str
    cache_type: str
    scope_type: str
    execution_id: int | None
    parent_execution_id: int | None
    expires_at: datetime
    created_at: datetime | None
    accessed_at: datetime | None
    access_count: int
    auto_renew: bool
    renew_config: str | None  # raw JSON text
    data_encrypted: str  # "" when the query did not select it


@dataclass(frozen=True, slots=True)
class NewKeychain:
    cache_key: str
    keychain_name: str
    catalog_id: int
    credential_type: str
    cache_type: str
    scope_type: str
    execution_id: int | None
    parent_execution_id: int | None
    data_encrypted: str
    expires_at: datetime
    auto_renew: bool
    renew_config: Any


@dataclass(frozen=True, slots=True)
class AuditRecord:
    audit_id: int
    credential: str
    operation: str
    outcome: str
    worker_id: str | None = None
    execution_id: int | None = None
    parent_execution_id: int | None = None
    server_region: str | None = None
    broker_region: str | None = None
    kek_version: str | None = None
    notes: str | None = None
    occurred_at: datetime | None = None  # set by the database


@dataclass(frozen=True, slots=True)
class AuditQuery:
    credential: str | None
    execution_id: int | None
    since: datetime | None
    until: datetime | None
    limit: int


@dataclass(frozen=True, slots=True)
class EnvelopeColumn:
    """Where a table keeps its sealed values (`data_encrypted`), keyed by `key` of SQL `key_type`."""

    name: str
    table: str
    key: str
    key_type: str


CREDENTIAL_ENVELOPES = EnvelopeColumn("credential", "noetl.credential", "id", "bigint")
KEYCHAIN_ENVELOPES = EnvelopeColumn("keychain", "noetl.keychain", "cache_key", "text")

_CREDENTIAL = "id, name, type, meta::text, tags, description, created_at, updated_at"
_KEYCHAIN = (
    "cache_key, keychain_name, catalog_id, credential_type, cache_type, scope_type, execution_id, "
    "parent_execution_id, expires_at, created_at, accessed_at, access_count, auto_renew, renew_config::text"
)
_AUDIT = (
    "audit_id, credential, operation, outcome, worker_id, execution_id, parent_execution_id, "
    "server_region, broker_region, kek_version, notes, occurred_at"
)


def _credential(row: asyncpg.Record, with_data: bool = False) -> CredentialRow:
    return CredentialRow(
        id=row[0],
        name=row[1],
        type=row[2],
        meta=row[3],
        tags=list(row[4]) if row[4] is not None else None,
        description=row[5],
        created_at=as_utc(row[6]),
        updated_at=as_utc(row[7]),
        data_encrypted=row[8] if with_data else "",
    )


def _keychain(row: asyncpg.Record, with_data: bool = False) -> KeychainRow:
    return KeychainRow(
        cache_key=row[0],
        keychain_name=row[1],
        catalog_id=row[2],
        credential_type=row[3],
        cache_type=row[4],
        scope_type=row[5],
        execution_id=row[6],
        parent_execution_id=row[7],
        expires_at=as_utc(row[8]),
        created_at=as_utc(row[9]) if row[9] is not None else None,
        accessed_at=as_utc(row[10]) if row[10] is not None else None,
        access_count=row[11] or 0,
        auto_renew=bool(row[12]),
        renew_config=row[13],
        data_encrypted=row[14] if with_data else "",
    )


def _audit(row: asyncpg.Record) -> AuditRecord:
    return AuditRecord(
        audit_id=row[0],
        credential=row[1],
        operation=row[2],
        outcome=row[3],
        worker_id=row[4],
        execution_id=row[5],
        parent_execution_id=row[6],
        server_region=row[7],
        broker_region=row[8],
        kek_version=row[9],
        notes=row[10],
        occurred_at=as_utc(row[11]),
    )


class SecretsStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # --- credentials -------------------------------------------------------------------------

    async def upsert_credential(
        self,
        *,
        new_id: int,
        name: str,
        type_: str,
        data_encrypted: str,
        meta: Any,
        tags: list[str] | None,
        description: str | None,
    ) -> CredentialRow:
        """Insert, or replace everything but the id and `created_at` of the row named `name`."""
        async with connection_errors("credential upsert"):
            row = await self._pool.fetchrow(
                "INSERT INTO noetl.credential (id, name, type, data_encrypted, meta, tags, description) "
                "VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7) "
                "ON CONFLICT (name) DO UPDATE SET type = EXCLUDED.type, data_encrypted = EXCLUDED.data_encrypted, "
                "meta = EXCLUDED.meta, tags = EXCLUDED.tags, description = EXCLUDED.description, updated_at = now() "
                f"RETURNING {_CREDENTIAL}",
                new_id,
                name,
                type_,
                data_encrypted,
                dumps_text(meta),
                tags,
                description,
            )
        assert row is not None  # INSERT ... RETURNING always yields the row
        return _credential(row)

    async def credential(
        self, *, by_id: int | None = None, by_name: str | None = None
    ) -> CredentialRow | None:
        """One credential with its envelope, by id or by name."""
        column, value = ("id", by_id) if by_id is not None else ("name", by_name)
        async with connection_errors("credential read"):
            row = await self._pool.fetchrow(
                f"SELECT {_CREDENTIAL}, data_encrypted FROM noetl.credential WHERE {column} = $1", value
            )
        return _credential(row, with_data=True) if row else None

    async def list_credentials(self, *, type_: str | None, q: str | None) -> list[CredentialRow]:
        """Without envelopes: a list never carries secret data, sealed or not."""
        async with connection_errors("credential list"):
            rows = await self._pool.fetch(
                f"SELECT {_CREDENTIAL} FROM noetl.credential "
                "WHERE ($1::text IS NULL OR type = $1) AND ($2::text IS NULL "
                "OR strpos(lower(name), lower($2)) > 0 OR strpos(lower(COALESCE(description, '')), lower($2)) > 0) "
                "ORDER BY name",
                type_,
                q,
            )
        return [_credential(row) for row in rows]

    async def delete_credential(self, credential_id: int) -> bool:
        async with connection_errors("credential delete"):
            status = await self._pool.execute("DELETE FROM noetl.credential WHERE id = $1", credential_id)
        return bool(status.endswith(" 1"))

    # --- keychain ----------------------------------------------------------------------------

    async def upsert_keychain(self, entry: NewKeychain) -> None:
        async with connection_errors("keychain upsert"):
            await self._pool.execute(
                "INSERT INTO noetl.keychain (cache_key, keychain_name, catalog_id, credential_type, cache_type, "
                "scope_type, execution_id, parent_execution_id, data_encrypted, expires_at, created_at, "
                "accessed_at, access_count, auto_renew, renew_config) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now(), now(), 0, $11, $12::jsonb) "
                "ON CONFLICT (cache_key) DO UPDATE SET data_encrypted = EXCLUDED.data_encrypted, "
                "credential_type = EXCLUDED.credential_type, cache_type = EXCLUDED.cache_type, "
                "execution_id = EXCLUDED.execution_id, parent_execution_id = EXCLUDED.parent_execution_id, "
                "scope_type = EXCLUDED.scope_type, expires_at = EXCLUDED.expires_at, accessed_at = now(), "
                "auto_renew = EXCLUDED.auto_renew, renew_config = EXCLUDED.renew_config",
                entry.cache_key,
                entry.keychain_name,
                entry.catalog_id,
                entry.credential_type,
                entry.cache_type,
                entry.scope_type,
                entry.execution_id,
                entry.parent_execution_id,
                entry.data_encrypted,
                entry.expires_at,
                entry.auto_renew,
                dumps_text(entry.renew_config),
            )

    async def read_live_keychain(self, cache_key: str) -> KeychainRow | None:
        """The unexpired row with its envelope, its access counted; None when absent or expired."""
        async with connection_errors("keychain read"):
            row = await self._pool.fetchrow(
                "UPDATE noetl.keychain SET accessed_at = now(), access_count = COALESCE(access_count, 0) + 1 "
                f"WHERE cache_key = $1 AND expires_at > now() RETURNING {_KEYCHAIN}, data_encrypted",
                cache_key,
            )
        return _keychain(row, with_data=True) if row else None

    async def keychain_metadata(self, cache_key: str) -> KeychainRow | None:
        """The row without its envelope, expired or not."""
        async with connection_errors("keychain read"):
            row = await self._pool.fetchrow(
                f"SELECT {_KEYCHAIN} FROM noetl.keychain WHERE cache_key = $1", cache_key
            )
        return _keychain(row) if row else None

    async def delete_keychain(self, cache_key: str) -> bool:
        async with connection_errors("keychain delete"):
            status = await self._pool.execute("DELETE FROM noetl.keychain WHERE cache_key = $1", cache_key)
        return bool(status.endswith(" 1"))

    async def list_keychain(self, catalog_id: int) -> list[KeychainRow]:
        async with connection_errors("keychain list"):
            rows = await self._pool.fetch(
                f"SELECT {_KEYCHAIN} FROM noetl.keychain WHERE catalog_id = $1 ORDER BY keychain_name, scope_type, cache_key",
                catalog_id,
            )
        return [_keychain(row) for row in rows]

    async def purge_expired_keychain(self) -> int:
        """Deletes expired rows except `auto_renew` ones (§9.8); returns how many went."""
        async with connection_errors("keychain cleanup"):
            status = await self._pool.execute(
                "DELETE FROM noetl.keychain WHERE expires_at <= now() AND NOT COALESCE(auto_renew, false)"
            )
        return int(status.rsplit(" ", 1)[-1])

    # --- sealed values, for rotation and key status ----------------------------------------

    async def envelopes(self, where: EnvelopeColumn, after: Any, limit: int) -> list[tuple[Any, str]]:
        """(key, envelope) in key order after the cursor."""
        async with connection_errors(f"{where.name} scan"):
            rows = await self._pool.fetch(
                f"SELECT {where.key}, data_encrypted FROM {where.table} "
                f"WHERE ($1::{where.key_type} IS NULL OR {where.key} > $1) ORDER BY {where.key} LIMIT $2",
                after,
                limit,
            )
        return [(row[0], row[1]) for row in rows]

    async def replace_envelope(self, where: EnvelopeColumn, key: Any, old: str, new: str) -> bool:
        """Compare-and-set: False when the row changed (or went) since it was read."""
        async with connection_errors(f"{where.name} rewrap"):
            status = await self._pool.execute(
                f"UPDATE {where.table} SET data_encrypted = $3 WHERE {where.key} = $1 AND data_encrypted = $2",
                key,
                old,
                new,
            )
        return bool(status.endswith(" 1"))

    # --- audit -------------------------------------------------------------------------------

    async def insert_audit(self, record: AuditRecord) -> None:
        """Raises asyncpg.PostgresError or Unavailable; the auditor decides what a failure means."""
        async with connection_errors("secret audit write"):
            await self._pool.execute(
                "INSERT INTO noetl.secret_audit (audit_id, credential, operation, outcome, worker_id, "
                "execution_id, parent_execution_id, server_region, broker_region, kek_version, notes) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                record.audit_id,
                record.credential,
                record.operation,
                record.outcome,
                record.worker_id,
                record.execution_id,
                record.parent_execution_id,
                record.server_region,
                record.broker_region,
                record.kek_version,
                record.notes,
            )

    async def list_audit(self, query: AuditQuery) -> list[AuditRecord]:
        """Newest first."""
        async with connection_errors("secret audit query"):
            rows = await self._pool.fetch(
                f"SELECT {_AUDIT} FROM noetl.secret_audit "
                "WHERE ($1::text IS NULL OR credential = $1) AND ($2::bigint IS NULL OR execution_id = $2) "
                "AND ($3::timestamptz IS NULL OR occurred_at >= $3) AND ($4::timestamptz IS NULL OR occurred_at <= $4) "
                "ORDER BY occurred_at DESC, audit_id DESC LIMIT $5",
                query.credential,
                query.execution_id,
                query.since,
                query.until,
                query.limit,
            )
        return [_audit(row) for row in rows]
