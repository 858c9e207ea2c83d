"""Catalog use cases: register, list, resolve."""

from __future__ import annotations

from dataclasses import dataclass

from services.catalog.registry import normalize_kind, parse_document
from services.catalog.store import CatalogStore, Entry
from services.common.errors import InvalidArgument, NotFound
from services.common.ids import Snowflake


@dataclass(frozen=True, slots=True)
class Lookup:
    catalog_id: int | None
    path: str | None
    version: int | None  # None = latest non-archived


class Catalog:
    def __init__(self, store: CatalogStore, ids: Snowflake) -> None:
        self._store = store
        self._ids = ids

    async def register(self, content: str, resource_type: str) -> Entry:
        """Raises Internal when the content is not YAML."""
        doc = parse_document(content, resource_type or "Playbook")
        return await self._store.insert_version(
            catalog_id=self._ids.next_id(),
            path=doc.path,
            kind=doc.kind,
            content=doc.content,
            payload=doc.payload,
            meta=doc.meta,
        )

    async def resolve(self, lookup: Lookup) -> Entry:
        """Raises InvalidArgument without an identifier, NotFound when nothing matches."""
        if lookup.catalog_id is not None:
            entry = await self._store.by_id(lookup.catalog_id)
        elif lookup.path:
            if lookup.version is None:
                entry = await self._store.latest(lookup.path)
            else:
                entry = await self._store.by_version(lookup.path, lookup.version)
        else:
            raise InvalidArgument("At least one identifier must be provided: catalog_id or path")
        if entry is None:
            raise NotFound("Catalog entry not found")
        return entry

    async def list(
        self,
        *,
        kind: str | None,
        path: str | None,
        agent_only: bool,
        capabilities: list[str],
        include_archived: bool,
    ) -> list[Entry]:
        return await self._store.list(
            kind=normalize_kind(kind) if kind else None,
            path=path,
            agent_only=agent_only,
            capabilities=capabilities,
            include_archived=include_archived,
        )
