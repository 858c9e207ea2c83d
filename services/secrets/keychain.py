"""Keychain entries: per-catalog / per-execution sealed tokens with a TTL (data-model.md §9.8)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kernel.errors import Internal, InvalidArgument
from kernel.timeutil import utcnow
from services.secrets.audit import Auditor, Operation, Outcome, Reader
from services.secrets.cipher import Cipher, SealError
from services.secrets.store import KeychainRow, NewKeychain, SecretsStore

SCOPES = ("local", "global", "shared")
CACHE_TYPES = ("token", "secret")
LOCAL_DEFAULT_TTL = 3600
OTHER_DEFAULT_TTL = 604800


class ReadStatus(enum.StrEnum):
    SUCCESS = "success"
    EXPIRED = "expired"
    NOT_FOUND = "not_found"


def cache_key(name: str, catalog_id: int, execution_id: int | None, scope_type: str) -> str:
    """§9.8: the row key of an entry in a scope (unknown scopes share the global key)."""
    if scope_type == "local":
        return f"{name}:{catalog_id}:{execution_id if execution_id is not None else 'local'}"
    if scope_type == "shared":
        suffix = f":{execution_id}" if execution_id is not None else ""
        return f"{name}:{catalog_id}:shared{suffix}"
    return f"{name}:{catalog_id}:global"


def default_ttl(scope_type: str) -> int:
    return LOCAL_DEFAULT_TTL if scope_type == "local" else OTHER_DEFAULT_TTL


@dataclass(frozen=True, slots=True)
class KeychainInput:
    catalog_id: int
    name: str
    data: Any
    credential_type: str
    cache_type: str = "token"
    scope_type: str = "global"
    execution_id: int | None = None
    parent_execution_id: int | None = None
    ttl_seconds: int | None = None  # wins over expires_at
    expires_at: datetime | None = None
    auto_renew: bool = False
    renew_config: Any = None


@dataclass(frozen=True, slots=True)
class Cached:
    cache_key: str
    expires_at: datetime
    ttl_seconds: int
    auto_renew: bool


@dataclass(frozen=True, slots=True)
class KeychainRead:
    status: ReadStatus
    cache_key: str
    row: KeychainRow | None = None
    data: Any = None  # only with SUCCESS
    ttl_seconds: float = 0.0


class Keychain:
    def __init__(self, store: SecretsStore, cipher: Cipher, auditor: Auditor) -> None:
        self._store = store
        self._cipher = cipher
        self._auditor = auditor

    async def set(self, entry: KeychainInput) -> Cached:
        """Upserts the sealed entry under its scope's cache key.

        Raises:
            InvalidArgument: an unknown scope or cache type, data that is not an object.
        """
        if entry.scope_type not in SCOPES:
            raise InvalidArgument(f"scope_type must be one of {', '.join(SCOPES)}")
        if entry.cache_type not in CACHE_TYPES:
            raise InvalidArgument(f"cache_type must be one of {', '.join(CACHE_TYPES)}")
        if not isinstance(entry.data, dict):
            raise InvalidArgument("token_data must be an object")
        now = utcnow()
        if entry.ttl_seconds is not None:
            ttl = entry.ttl_seconds
            expires_at = now + timedelta(seconds=ttl)
        elif entry.expires_at is not None:
            expires_at = entry.expires_at
            ttl = int((expires_at - now).total_seconds())
        else:
            ttl = default_ttl(entry.scope_type)
            expires_at = now + timedelta(seconds=ttl)
        key = cache_key(entry.name, entry.catalog_id, entry.execution_id, entry.scope_type)
        await self._store.upsert_keychain(
            NewKeychain(
                cache_key=key,
                keychain_name=entry.name,
                catalog_id=entry.catalog_id,
                credential_type=entry.credential_type,
                cache_type=entry.cache_type,
                scope_type=entry.scope_type,
                execution_id=entry.execution_id,
                parent_execution_id=entry.parent_execution_id,
                data_encrypted=await self._cipher.seal(entry.data),
                expires_at=expires_at,
                auto_renew=entry.auto_renew,
                renew_config=entry.renew_config,
            )
        )
        return Cached(cache_key=key, expires_at=expires_at, ttl_seconds=ttl, auto_renew=entry.auto_renew)

    async def get(
        self, catalog_id: int, name: str, execution_id: int | None, scope_type: str, reader: Reader
    ) -> KeychainRead:
        """A live entry with its data (audited `get_keychain`), an expired one without, or nothing.

        Raises:
            Internal: the entry cannot be decrypted (named in the message).
            Unavailable: the audit write failed and the audit is required.
        """
        key = cache_key(name, catalog_id, execution_id, scope_type)
        read = await self.read(key, reader, Operation.GET_KEYCHAIN)
        if read.status is ReadStatus.NOT_FOUND:
            await self._auditor.record(
                reader,
                credential=name,
                operation=Operation.GET_KEYCHAIN,
                outcome=Outcome.CREDENTIAL_NOT_FOUND,
                notes=f"cache_key={key}",
            )
        return read

    async def read(self, key: str, reader: Reader, operation: Operation) -> KeychainRead:
        """Like `get` by cache key; audits found entries (live: ok, expired: expired) as `operation`.

        Raises:
            Internal: the entry cannot be decrypted.
            Unavailable: the audit write failed and the audit is required.
        """
        row = await self._store.read_live_keychain(key)
        if row is None:
            expired = await self._store.keychain_metadata(key)
            if expired is None:
                return KeychainRead(ReadStatus.NOT_FOUND, key)
            await self._auditor.record(
                reader,
                credential=expired.keychain_name,
                operation=operation,
                outcome=Outcome.EXPIRED,
                notes=f"cache_key={key}",
            )
            return KeychainRead(ReadStatus.EXPIRED, key, expired)
        try:
            opened = await self._cipher.open(row.data_encrypted)
        except SealError as exc:
            await self._auditor.record(
                reader,
                credential=row.keychain_name,
                operation=operation,
                outcome=Outcome.DECRYPT_ERROR,
                kek_version=exc.kek_version,
                notes=f"cache_key={key}",
            )
            raise Internal(f"Cannot decrypt keychain entry '{row.keychain_name}' ({key}): {exc}") from exc
        await self._auditor.record(
            reader,
            credential=row.keychain_name,
            operation=operation,
            outcome=Outcome.OK,
            kek_version=opened.kek_version,
            notes=f"cache_key={key}",
        )
        ttl = (row.expires_at - utcnow()).total_seconds()
        return KeychainRead(ReadStatus.SUCCESS, key, row, opened.data, ttl)

    async def delete(
        self, catalog_id: int, name: str, execution_id: int | None, scope_type: str
    ) -> tuple[bool, str]:
        key = cache_key(name, catalog_id, execution_id, scope_type)
        return await self._store.delete_keychain(key), key

    async def list(self, catalog_id: int) -> list[KeychainRow]:
        """Metadata only: never the sealed data."""
        return await self._store.list_keychain(catalog_id)

    async def purge_expired(self) -> int:
        return await self._store.purge_expired_keychain()
