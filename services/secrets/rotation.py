"""KEK rotation and key status (data-model.md §9.6).

Rotation scans `credential` then `keychain` in key order from a cursor. A row whose data key is
under the current provider, key and version is skipped; any other has only its `dek` replaced:
`ct` stays byte-identical and the plaintext is never rebuilt. Writes are compare-and-set, so a
row re-sealed by a concurrent upsert is left alone, and two rotations may run at once.
"""

from __future__ import annotations

import collections
import enum
import logging
from dataclasses import dataclass, field

import asyncpg
from prometheus_client import Counter

from kernel.errors import Unavailable
from services.secrets import envelope
from services.secrets.envelope import EnvelopeError
from services.secrets.kek import KekError, Keyring, RewrapError
from services.secrets.store import CREDENTIAL_ENVELOPES, KEYCHAIN_ENVELOPES, EnvelopeColumn, SecretsStore

log = logging.getLogger(__name__)

INVALID = "invalid"
STATUS_PAGE = 1000


class RowStatus(enum.StrEnum):
    SKIPPED = "skipped"
    REWRAPPED = "rewrapped"
    FAILED_UNWRAP = "failed_unwrap"
    FAILED_WRAP = "failed_wrap"
    FAILED_WRITE = "failed_write"
    PARSE_ERROR = "parse_error"


TABLES = ("credential", "keychain")
ROTATIONS = Counter("noetl_wallet_rotate_total", "Rows seen by KEK rotation", ["table", "status"])
for _table in TABLES:
    for _status in RowStatus:
        ROTATIONS.labels(_table, _status.value)


@dataclass
class TableReport:
    processed: int = 0
    rewrapped: int = 0
    skipped: int = 0
    failures: collections.Counter[str] = field(default_factory=collections.Counter)
    last_id: str = ""

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def count(self, status: RowStatus) -> None:
        self.processed += 1
        if status is RowStatus.REWRAPPED:
            self.rewrapped += 1
        elif status is RowStatus.SKIPPED:
            self.skipped += 1
        else:
            self.failures[status.value] += 1


@dataclass(frozen=True, slots=True)
class RotateInput:
    batch_size: int = 100
    max_batches: int = 1000
    credential_after: int | None = None
    keychain_after: str | None = None


class Rotator:
    def __init__(self, store: SecretsStore, keyring: Keyring) -> None:
        self._store = store
        self._keyring = keyring

    async def rotate(self, request: RotateInput) -> tuple[TableReport, TableReport]:
        """Raises Unavailable when the current key version cannot be learnt (nothing is scanned)."""
        try:
            # Fresh, not cached: rotation right after a new Vault key version must see it.
            current = await self._keyring.current_version(refresh=True)
        except KekError as exc:
            raise Unavailable(f"cannot learn the current KEK version: {exc}", retry_after=5) from exc
        credentials = await self._rotate(CREDENTIAL_ENVELOPES, request.credential_after, request, current)
        keychain = await self._rotate(KEYCHAIN_ENVELOPES, request.keychain_after, request, current)
        return credentials, keychain

    async def _rotate(
        self, table: EnvelopeColumn, after: int | str | None, request: RotateInput, current: str
    ) -> TableReport:
        report = TableReport(last_id="" if after is None else str(after))
        for _ in range(request.max_batches):
            rows = await self._store.envelopes(table, after, request.batch_size)
            for key, stored in rows:
                status = await self._row(table, key, stored, current)
                ROTATIONS.labels(table.name, status.value).inc()
                report.count(status)
                after = key
                report.last_id = str(key)
            if len(rows) < request.batch_size:
                break
        return report

    async def _row(self, table: EnvelopeColumn, key: int | str, stored: str, current: str) -> RowStatus:
        try:
            parsed = envelope.parse(stored)
        except EnvelopeError as exc:
            log.warning("rotation: %s %s is not an envelope: %s", table.name, key, exc)
            return RowStatus.PARSE_ERROR
        if self._keyring.is_current(parsed.dek, current):
            return RowStatus.SKIPPED
        try:
            wrapped = await self._keyring.rewrap_to_current(parsed.dek)
        except RewrapError as exc:
            log.warning("rotation: %s %s: %s failed: %s", table.name, key, exc.phase, exc)
            return RowStatus.FAILED_UNWRAP if exc.phase == "unwrap" else RowStatus.FAILED_WRAP
        try:
            written = await self._store.replace_envelope(table, key, stored, parsed.with_dek(wrapped).dumps())
        except (asyncpg.PostgresError, Unavailable) as exc:
            log.warning("rotation: %s %s: write failed: %s", table.name, key, type(exc).__name__)
            return RowStatus.FAILED_WRITE
        # Not written: the row was re-sealed or deleted meanwhile, by a writer that wraps under
        # the current key; there is nothing left to re-wrap.
        return RowStatus.REWRAPPED if written else RowStatus.SKIPPED

    async def key_status(self) -> tuple[dict[str, int], dict[str, int]]:
        """Rows per KEK version (`dek.kv`), `invalid` for values that are not envelopes; keys sorted."""
        return await self._status(CREDENTIAL_ENVELOPES), await self._status(KEYCHAIN_ENVELOPES)

    async def _status(self, table: EnvelopeColumn) -> dict[str, int]:
        counts: collections.Counter[str] = collections.Counter()
        after: int | str | None = None
        while True:
            rows = await self._store.envelopes(table, after, STATUS_PAGE)
            for key, stored in rows:
                try:
                    counts[envelope.parse(stored).dek.kv] += 1
                except EnvelopeError:
                    counts[INVALID] += 1
                after = key
            if len(rows) < STATUS_PAGE:
                return dict(sorted(counts.items()))
