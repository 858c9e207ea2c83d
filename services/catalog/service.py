"""Catalog use cases: register, list, resolve, delete and restore, the workload form."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from kernel.errors import InvalidArgument, NotFound
from kernel.ids import Snowflake
from services.catalog.ports import HistoryPort
from services.catalog.registry import normalize_kind, parse_document
from services.catalog.store import CatalogStore, Entry, VersionRef
from services.catalog.ui_schema import WorkloadForm, workload_form

# Versions are 16-bit numbers from 1 (http-api.md §3.1).
MAX_VERSION = 32767


@dataclass(frozen=True, slots=True)
class Lookup:
    catalog_id: int | None
    path: str | None
    version: int | None  # None = latest non-archived


class Catalog:
    def __init__(self, store: CatalogStore, ids: Snowflake, history: HistoryPort) -> None:
        self._store = store
        self._ids = ids
        self._history = history

    async def register(self, content: str, resource_type: str) -> Entry:
        """Raises InvalidArgument when the content is not a YAML mapping or passes a limit
        (`yaml_guard`, the path grammar)."""
        # Parsing a large document takes a while; the catalog keeps answering meanwhile.
        doc = await asyncio.to_thread(parse_document, content, resource_type or "Playbook")
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
            elif 0 < lookup.version <= MAX_VERSION:
                entry = await self._store.by_version(lookup.path, lookup.version)
            else:
                # No such version can exist; asking would overflow the column's type (a 500).
                entry = None
        else:
            raise InvalidArgument("At least one identifier must be provided: catalog_id or path")
        if entry is None:
            raise NotFound("Catalog entry not found")
        return entry

    async def delete(self, path: str, version: int | None) -> list[VersionRef]:
        """Removes live versions no event references and archives the others (http-api.md §3.5).

        Already archived versions count as deleted, so a repeated delete touches nothing.

        Raises:
            InvalidArgument: a blank path.
        """
        _require_path(path)
        live = await self._store.live_versions(path, version)
        if not live:
            return []
        used = await self._history.used([ref.catalog_id for ref in live])
        return await self._store.remove_or_archive(
            path,
            remove=[ref.catalog_id for ref in live if ref.catalog_id not in used],
            archive=[ref.catalog_id for ref in live if ref.catalog_id in used],
        )

    async def restore(self, path: str, version: int | None) -> list[VersionRef]:
        """Raises InvalidArgument for a blank path."""
        _require_path(path)
        return await self._store.restore(path, version)

    async def ui_schema(self, path: str, version: int | None) -> tuple[Entry, WorkloadForm]:
        """Raises NotFound when no entry matches (a blank path included)."""
        if not path.strip():
            raise NotFound("Catalog entry not found")
        entry = await self.resolve(Lookup(catalog_id=None, path=path, version=version))
        return entry, workload_form(entry.content, entry.payload, entry.path)

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


def _require_path(path: str) -> None:
    if not path.strip():
        raise InvalidArgument("path must not be empty")
