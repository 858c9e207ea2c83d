"""Credential use cases: upsert by name, list, get (data only on request, audited), delete, resolve."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from kernel.errors import InvalidArgument, NotFound, PermissionDenied
from kernel.ids import Snowflake
from kernel.timeutil import utcnow
from services.secrets.audit import Auditor, Operation, Outcome, Reader
from services.secrets.cipher import Cipher
from services.secrets.ports import SecretUse, WorkBindingPort
from services.secrets.reading import open_credential
from services.secrets.resolution import KEYCHAIN_TYPE, AliasResolver
from services.secrets.store import CredentialRow, SecretsStore

NOT_FOUND = "Credential not found"
KEYCHAIN_DESCRIPTION = "resolved from keychain provider"


@dataclass(frozen=True, slots=True)
class CredentialInput:
    name: str
    type: str
    data: Any
    meta: Any = None
    tags: list[str] | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Found:
    """A credential's metadata, and its decrypted data when it was asked for."""

    row: CredentialRow
    data: Any = None
    from_keychain: bool = False


def _keychain_row(alias: str, credential_type: str) -> CredentialRow:
    now: datetime = utcnow()
    return CredentialRow(
        id=0,
        name=alias,
        type=credential_type,
        meta=None,
        tags=None,
        description=KEYCHAIN_DESCRIPTION,
        created_at=now,
        updated_at=now,
        data_encrypted="",
    )


class Credentials:
    def __init__(
        self,
        store: SecretsStore,
        cipher: Cipher,
        auditor: Auditor,
        ids: Snowflake,
        aliases: AliasResolver | None,
        *,
        binding: WorkBindingPort,
    ) -> None:
        self._store = store
        self._cipher = cipher
        self._auditor = auditor
        self._ids = ids
        self._aliases = aliases
        self._binding = binding

    async def put(self, credential: CredentialInput) -> CredentialRow:
        """Seals `data` under a fresh data key and upserts by name.

        Raises:
            InvalidArgument: an empty name, or data that is not an object.
            Unavailable: the KEK provider could not wrap the data key.
        """
        name = credential.name.strip()
        if not name:
            raise InvalidArgument("Credential name must not be empty")
        if not isinstance(credential.data, dict):
            raise InvalidArgument("Credential data must be an object")
        return await self._store.upsert_credential(
            new_id=self._ids.next_id(),
            name=name,
            type_=credential.type.strip() or "generic",
            data_encrypted=await self._cipher.seal(credential.data),
            meta=credential.meta,
            tags=credential.tags,
            description=credential.description,
        )

    async def list(self, *, type_: str | None, q: str | None) -> list[CredentialRow]:
        return await self._store.list_credentials(type_=type_, q=q)

    async def find(self, identifier: str) -> CredentialRow | None:
        """All digits: by id; otherwise by name (http-api.md §9.3)."""
        if identifier.isascii() and identifier.isdigit():
            return await self._store.credential(by_id=int(identifier))
        return await self._store.credential(by_name=identifier)

    async def get(self, identifier: str, *, include_data: bool, reader: Reader) -> Found:
        """Metadata, plus decrypted data (audited `get_credential`) when `include_data`.

        With data asked for, an execution id and no stored credential, the identifier is resolved
        as a keychain alias of that execution's playbook.

        Raises:
            NotFound: neither a credential nor an alias. Internal: decryption failed.
            Unavailable: a required audit write failed.
        """
        row = await self.find(identifier)
        if not include_data:
            if row is None:
                raise NotFound(NOT_FOUND)
            return Found(row)
        if row is not None:
            opened = await open_credential(self._cipher, self._auditor, row, reader, Operation.GET_CREDENTIAL)
            return Found(row, opened.data)
        if reader.execution_id is not None and self._aliases is not None:
            resolved = await self._aliases.resolve(identifier, reader.execution_id, reader)
            if resolved is not None:
                return Found(_keychain_row(identifier, KEYCHAIN_TYPE), resolved.data, from_keychain=True)
        await self._auditor.record(
            reader,
            credential=identifier,
            operation=Operation.GET_CREDENTIAL,
            outcome=Outcome.CREDENTIAL_NOT_FOUND,
        )
        raise NotFound(NOT_FOUND)

    async def resolve(
        self, alias: str, execution_id: int, reader: Reader, *, refusal: str | None = None
    ) -> Found:
        """A worker's run-time read: a stored credential, else a keychain alias of the execution.

        Only for a worker holding a live claim on a command of that execution whose tool config or
        input names `alias` (asked of the execution service); anything else is refused and audited.
        `refusal`: why the caller may not ask as `reader.worker_id` at all (its credentials prove
        another worker), refused and audited without asking.

        Raises:
            PermissionDenied: no such claim. NotFound, Internal, Unavailable: as `get`.
        """
        reader = replace(reader, execution_id=execution_id)
        use = (
            SecretUse(False, refusal)
            if refusal is not None
            else await self._binding.secret_use(execution_id, reader.worker_id or "", alias)
        )
        if not use.allowed:
            await self._auditor.record(
                reader,
                credential=alias,
                operation=Operation.RESOLVE,
                outcome=Outcome.DENIED,
                notes=use.reason,
            )
            raise PermissionDenied(
                f"worker {reader.worker_id or '(none)'!r} may not resolve {alias!r} in execution {execution_id}: "
                f"{use.reason}"
            )
        return await self.get(alias, include_data=True, reader=reader)

    async def delete(self, identifier: str) -> CredentialRow:
        """Raises NotFound."""
        row = await self.find(identifier)
        if row is None or not await self._store.delete_credential(row.id):
            raise NotFound(NOT_FOUND)
        return row
