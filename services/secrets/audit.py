"""The secret-read audit trail (data-model.md §9.7): one row per read of decrypted data.

Best effort by default (a failed write is logged and counted as `dropped_async`); with
`NOETL_SECRET_AUDIT_REQUIRED=true` a failed write fails the read (`failed_strict`).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Protocol

import asyncpg
from prometheus_client import Counter

from kernel.errors import Unavailable
from kernel.ids import Snowflake
from services.secrets.store import AuditRecord

log = logging.getLogger(__name__)


class Operation(enum.StrEnum):
    GET_CREDENTIAL = "get_credential"
    GET_KEYCHAIN = "get_keychain"
    RESOLVE_KEYCHAIN = "resolve_keychain"
    GET_SEALED = "get_sealed"
    # A worker's run-time read refused before anything was looked up (no binding claim).
    RESOLVE = "resolve"


class Outcome(enum.StrEnum):
    OK = "ok"
    CREDENTIAL_NOT_FOUND = "credential_not_found"
    PROVIDER_FETCH_ERROR = "provider_fetch_error"
    TEMPLATE_ERROR = "template_error"
    EXPIRED = "expired"
    DECRYPT_ERROR = "decrypt_error"
    DENIED = "denied"


_WRITE_STATUSES = ("written", "dropped_async", "failed_strict")
AUDIT_WRITES = Counter(
    "noetl_secret_audit_writes_total",
    "Secret audit rows by operation, outcome and write status",
    ["operation", "outcome", "status"],
)
for _operation in Operation:
    for _outcome in Outcome:
        for _status in _WRITE_STATUSES:
            AUDIT_WRITES.labels(_operation.value, _outcome.value, _status)


@dataclass(frozen=True, slots=True)
class Reader:
    """Who reads, for which execution: the audit row's `worker_id`, execution ids and notes."""

    worker_id: str | None = None
    caller: str | None = None
    execution_id: int | None = None
    parent_execution_id: int | None = None
    catalog_id: int | None = None

    def notes(self) -> str | None:
        parts = []
        if self.caller:
            parts.append(f"caller={self.caller}")
        if self.catalog_id is not None:
            parts.append(f"catalog_id={self.catalog_id}")
        return " ".join(parts) or None


class AuditSink(Protocol):
    async def insert_audit(self, record: AuditRecord) -> None: ...


class Auditor:
    def __init__(self, sink: AuditSink, ids: Snowflake, *, required: bool) -> None:
        self._sink = sink
        self._ids = ids
        self._required = required

    async def record(
        self,
        reader: Reader,
        *,
        credential: str,
        operation: Operation,
        outcome: Outcome,
        kek_version: str | None = None,
        notes: str | None = None,
    ) -> None:
        """Writes one row (never the secret value).

        Raises:
            Unavailable: the write failed and the audit is required.
        """
        record = AuditRecord(
            audit_id=self._ids.next_id(),
            credential=credential,
            operation=operation.value,
            outcome=outcome.value,
            worker_id=reader.worker_id or None,
            execution_id=reader.execution_id,
            parent_execution_id=reader.parent_execution_id,
            kek_version=kek_version,
            notes=" ".join(part for part in (reader.notes(), notes) if part) or None,
        )
        try:
            await self._sink.insert_audit(record)
        except (asyncpg.PostgresError, Unavailable, OSError) as exc:
            status = "failed_strict" if self._required else "dropped_async"
            AUDIT_WRITES.labels(operation.value, outcome.value, status).inc()
            if self._required:
                raise Unavailable(
                    f"secret audit write failed, so the read of {credential!r} is refused "
                    "(NOETL_SECRET_AUDIT_REQUIRED=true)",
                    retry_after=2,
                ) from exc
            log.warning("secret audit row for %r dropped: %s", credential, type(exc).__name__)
            return
        AUDIT_WRITES.labels(operation.value, outcome.value, "written").inc()
