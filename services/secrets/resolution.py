"""Resolving a keychain alias of an execution's playbook (data-model.md §9.8).

Execution → its root event (catalog id, workload) → the `local` keychain cache → the playbook's
`keychain` entry named by the alias → its `credential:` (a template rendered against the
workload, naming a stored credential) → cached in the `local` scope. Other sources
(`provider:`) are not resolved by this wallet (docs/decisions.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import minijinja

from kernel.errors import FailedPrecondition, NotFound, Unprocessable
from kernel.timeutil import utcnow
from services.secrets.audit import Auditor, Operation, Outcome, Reader
from services.secrets.cipher import Cipher
from services.secrets.keychain import Keychain, KeychainInput, ReadStatus, cache_key
from services.secrets.ports import ExecutionsPort, PlaybooksPort
from services.secrets.reading import open_credential
from services.secrets.store import SecretsStore

CACHE_SCOPE = "local"
CACHE_TTL_SECONDS = 600
KEYCHAIN_TYPE = "keychain"


@dataclass(frozen=True, slots=True)
class Resolved:
    data: Any
    credential_type: str


def _definition(definitions: list[Mapping[str, Any]], alias: str) -> Mapping[str, Any] | None:
    for item in definitions:
        if item.get("name") == alias:
            return item
    return None


def render_reference(template: str, workload: Mapping[str, Any]) -> str:
    """The credential name a `credential:` template names (`{{ workload.x }}` or `{{ x }}`).

    Raises:
        ValueError: the template is invalid or renders to nothing.
    """
    try:
        rendered = minijinja.Environment().render_str(template, **{**workload, "workload": dict(workload)})
    except minijinja.TemplateError as exc:
        raise ValueError(str(exc)) from exc
    name = str(rendered).strip()
    if not name:
        raise ValueError(f"{template!r} renders to an empty name")
    return name


class AliasResolver:
    def __init__(
        self,
        *,
        executions: ExecutionsPort,
        playbooks: PlaybooksPort,
        keychain: Keychain,
        store: SecretsStore,
        auditor: Auditor,
        cipher: Cipher,
    ) -> None:
        self._executions = executions
        self._playbooks = playbooks
        self._keychain = keychain
        self._store = store
        self._auditor = auditor
        self._cipher = cipher

    async def resolve(self, alias: str, execution_id: int, reader: Reader) -> Resolved | None:
        """The alias's data, or None when the execution's playbook defines no such alias.

        Raises:
            NotFound: the alias names a credential that does not exist.
            Unprocessable: its `credential:` template does not render.
            FailedPrecondition: its source is a provider this wallet does not resolve.
            Internal: decryption failed. Unavailable: a required audit write failed.
        """
        origin = await self._executions.origin(execution_id)
        if origin is None:
            return None
        reader = replace(reader, execution_id=execution_id, catalog_id=origin.catalog_id)
        key = cache_key(alias, origin.catalog_id, execution_id, CACHE_SCOPE)
        cached = await self._keychain.read(key, reader, Operation.RESOLVE_KEYCHAIN)
        if cached.status is ReadStatus.SUCCESS and cached.row is not None:
            return Resolved(cached.data, cached.row.credential_type)
        definition = _definition(await self._playbooks.keychain(origin.catalog_id), alias)
        if definition is None:
            return None
        source = definition.get("credential")
        if not isinstance(source, str) or not source.strip():
            provider = definition.get("provider")
            await self._audit(reader, alias, Outcome.PROVIDER_FETCH_ERROR, f"provider={provider}")
            raise FailedPrecondition(
                f"Keychain alias '{alias}' has no credential: source"
                + (f" (provider {provider!r} is not resolved by this wallet)" if provider else "")
            )
        try:
            name = render_reference(source, origin.workload)
        except ValueError as exc:
            await self._audit(reader, alias, Outcome.TEMPLATE_ERROR, None)
            raise Unprocessable(f"Keychain alias '{alias}': credential template failed: {exc}") from exc
        row = await self._store.credential(by_name=name)
        if row is None:
            await self._audit(reader, alias, Outcome.CREDENTIAL_NOT_FOUND, f"credential={name}")
            raise NotFound(f"Keychain alias '{alias}' refers to credential '{name}', which does not exist")
        opened = await open_credential(self._cipher, self._auditor, row, reader, Operation.RESOLVE_KEYCHAIN)
        kind = definition.get("kind")
        credential_type = kind if isinstance(kind, str) and kind else row.type
        await self._keychain.set(
            KeychainInput(
                catalog_id=origin.catalog_id,
                name=alias,
                data=opened.data,
                credential_type=credential_type,
                cache_type="secret",
                scope_type=CACHE_SCOPE,
                execution_id=execution_id,
                parent_execution_id=reader.parent_execution_id,
                # A stored credential has no expiry of its own (§9.8: 600 s then).
                expires_at=utcnow() + timedelta(seconds=CACHE_TTL_SECONDS),
            )
        )
        return Resolved(opened.data, credential_type)

    async def _audit(self, reader: Reader, alias: str, outcome: Outcome, notes: str | None) -> None:
        await self._auditor.record(
            reader, credential=alias, operation=Operation.RESOLVE_KEYCHAIN, outcome=outcome, notes=notes
        )
