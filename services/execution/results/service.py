"""The result store (data-model.md §3.8, http-api.md §10, dsl.md §9.12).

JSON values kept outside the event log, on the shard of their execution: results a worker
externalised because they exceed its inline budget, and values put through
`PUT /api/result/{execution_id}`. Every tier name of the contract is accepted; the value always
lands in Postgres and the answer names the tier actually used (`db`).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from kernel.errors import InvalidArgument, NotFound
from kernel.ids import Snowflake
from kernel.lifecycle import Periodic
from language.result_refs import ResultRef
from services.execution.results.store import NewResultRow, ResultStore

log = logging.getLogger(__name__)

SCOPES = ("step", "execution", "workflow", "permanent")
STORE_TIERS = ("memory", "kv", "disk", "object", "s3", "gcs", "db", "duckdb", "eventlog")
STORED_IN = "db"
DEFAULT_SCOPE = "execution"

_TTL = re.compile(r"(\d{1,15})([smhdwy]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800, "y": 31_536_000}
MAX_TTL_SECONDS = 1000 * _UNIT_SECONDS["y"]

SWEEP_INTERVAL_SECONDS = 300.0
SWEEP_BATCH = 1000


def ttl_seconds(ttl: str | None) -> int | None:
    """Seconds until a value expires; None when it never does (no ttl, or `forever`).

    `30m`, `1h`, `2d`, `1w`, `1y` (365 days), `45s` or a plain number of seconds; lower case,
    from 1 second up to 1000 years.

    Raises:
        InvalidArgument: naming `ttl` and the accepted forms.
    """
    if ttl is None:
        return None
    text = ttl.strip()
    if text == "forever":
        return None
    match = _TTL.fullmatch(text)
    if match is not None:
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        if 0 < seconds <= MAX_TTL_SECONDS:
            return seconds
    raise InvalidArgument(
        f"Invalid ttl: {ttl}. Use a number of seconds, or a count with s, m, h, d, w or y "
        "(30m, 1h, 2d, 1y), or forever"
    )


def checked_scope(scope: str | None) -> str:
    """Raises InvalidArgument with the contract's message (http-api.md §10.1)."""
    if scope is None:
        return DEFAULT_SCOPE
    if scope not in SCOPES:
        raise InvalidArgument(f"Invalid scope: {scope}. Use: {', '.join(SCOPES)}")
    return scope


def checked_store(store: str | None) -> str:
    """The tier that will hold the value: `db`, whichever valid tier was asked for.

    Raises:
        InvalidArgument: with the contract's message (http-api.md §10.1).
    """
    if store is not None and store not in STORE_TIERS:
        raise InvalidArgument(f"Invalid store tier: {store}")
    return STORED_IN


@dataclass(frozen=True, slots=True)
class PutInput:
    execution_id: int
    name: str
    data: Any
    scope: str | None = None
    store: str | None = None
    ttl: str | None = None
    source_step: str | None = None
    correlation: dict[str, Any] | None = None
    extracted: dict[str, Any] | None = None
    # Accepted for compatibility; Postgres already compresses large JSONB values (TOAST).
    compress: bool = False


@dataclass(frozen=True, slots=True)
class StoredResult:
    ref: ResultRef
    store: str
    scope: str
    expires_at: datetime | None
    size: int
    sha256: str


class Results:
    def __init__(self, store: ResultStore, ids: Snowflake) -> None:
        self._store = store
        self._ids = ids

    async def put(self, request: PutInput) -> StoredResult:
        """Stores the value as given: the writer has replaced the secrets it resolved (data-model.md
        §9.10), and what merely looks secret is user data.

        `size` and `sha256` describe the compact UTF-8 JSON of the value as written.

        Raises:
            InvalidArgument: a bad execution id, name, scope, store tier or ttl, or a value
                Postgres cannot hold (a NUL character in a string).
        """
        if request.execution_id <= 0:
            raise InvalidArgument(f"execution_id must be a positive id, got {request.execution_id}")
        name = request.name.strip()
        if not name:
            raise InvalidArgument("name is required")
        scope = checked_scope(request.scope)
        store = checked_store(request.store)
        ttl = ttl_seconds(request.ttl)
        encoded = orjson.dumps(request.data)
        ref = ResultRef(execution_id=request.execution_id, name=name, result_id=self._ids.next_id())
        digest = hashlib.sha256(encoded).hexdigest()
        expires_at = await self._store.insert_result(
            NewResultRow(
                result_id=ref.result_id,
                execution_id=ref.execution_id,
                name=name,
                scope=scope,
                source_step=request.source_step,
                data=encoded.decode(),
                size=len(encoded),
                sha256=digest,
                correlation=request.correlation,
                extracted=request.extracted,
                ttl_seconds=ttl,
            )
        )
        return StoredResult(
            ref=ref, store=store, scope=scope, expires_at=expires_at, size=len(encoded), sha256=digest
        )

    async def resolve(self, ref: ResultRef) -> str:
        """The stored value as JSON text.

        Raises:
            NotFound: no such result, or it expired.
        """
        row = await self._store.result(ref.execution_id, ref.result_id)
        if row is None or row.name != ref.name:
            raise NotFound(f"Result not found: {ref.uri}")
        if row.expired:
            raise NotFound(f"Result expired: {ref.uri}")
        return row.data

    async def fetch(self, ref: ResultRef) -> Any:
        """The stored value, decoded (the orchestrator hydrates step results with it).

        Raises:
            NotFound: no such result, or it expired.
        """
        return orjson.loads(await self.resolve(ref))

    async def sweep_expired(self) -> int:
        """Deletes expired values, a batch at a time; returns how many went."""
        total = 0
        while (deleted := await self._store.delete_expired_results(SWEEP_BATCH)) > 0:
            total += deleted
            if deleted < SWEEP_BATCH:
                break
        return total


class ExpirySweeper(Periodic):
    """Deletes expired results every few minutes (data-model.md §3: "insert + TTL delete").

    Expired values are already invisible to `resolve`; this only returns their space.
    """

    def __init__(self, results: Results, interval_seconds: float = SWEEP_INTERVAL_SECONDS) -> None:
        super().__init__("result-sweeper", self._sweep, interval_seconds)
        self._results = results

    async def _sweep(self) -> None:
        deleted = await self._results.sweep_expired()
        if deleted:
            log.info("deleted %d expired results", deleted)
