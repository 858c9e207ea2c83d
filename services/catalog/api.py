"""CatalogService servicer: request → domain call → response, nothing else."""

from __future__ import annotations

import grpc
from noetl.v1 import catalog_pb2, catalog_pb2_grpc

from kernel import jsonutil
from kernel.errors import MeshError
from kernel.wire import optional, timestamp
from services.catalog.service import Catalog, Lookup
from services.catalog.store import Entry, VersionRef


def entry_message(entry: Entry) -> catalog_pb2.CatalogEntry:
    return catalog_pb2.CatalogEntry(
        catalog_id=entry.catalog_id,
        path=entry.path,
        version=entry.version,
        kind=entry.kind,
        content=entry.content,
        layout_json=(entry.layout or "").encode(),
        payload_json=(entry.payload or "").encode(),
        meta_json=(entry.meta or "").encode(),
        created_at=timestamp(entry.created_at),
        archived=entry.archived,
    )


def _registered(entry: Entry) -> catalog_pb2.RegisterResponse:
    return catalog_pb2.RegisterResponse(
        catalog_id=entry.catalog_id, path=entry.path, version=entry.version, kind=entry.kind
    )


def _refs(refs: list[VersionRef]) -> list[catalog_pb2.CatalogVersionRef]:
    return [
        catalog_pb2.CatalogVersionRef(catalog_id=ref.catalog_id, version=ref.version, archived=ref.archived)
        for ref in refs
    ]


class CatalogApi(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    async def Register(
        self, request: catalog_pb2.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.RegisterResponse:
        return _registered(await self._catalog.register(request.content, request.resource_type))

    async def RegisterBatch(
        self, request: catalog_pb2.RegisterBatchRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.RegisterBatchResponse:
        results = []
        for index, item in enumerate(request.items):
            try:
                entry = await self._catalog.register(item.content, item.resource_type)
            except MeshError as exc:
                results.append(catalog_pb2.RegisterBatchResult(index=index, error=str(exc.detail)))
                continue
            results.append(catalog_pb2.RegisterBatchResult(index=index, registered=_registered(entry)))
        return catalog_pb2.RegisterBatchResponse(results=results)

    async def List(
        self, request: catalog_pb2.ListRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.ListResponse:
        entries = await self._catalog.list(
            kind=optional(request, "resource_type"),
            path=optional(request, "path"),
            agent_only=request.agent_only,
            capabilities=list(request.capabilities),
            include_archived=request.include_archived,
        )
        return catalog_pb2.ListResponse(entries=[entry_message(e) for e in entries])

    async def GetResource(
        self, request: catalog_pb2.GetResourceRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.GetResourceResponse:
        lookup = Lookup(
            catalog_id=optional(request, "catalog_id"),
            path=optional(request, "path"),
            version=optional(request, "version"),
        )
        return catalog_pb2.GetResourceResponse(entry=entry_message(await self._catalog.resolve(lookup)))

    async def UiSchema(
        self, request: catalog_pb2.UiSchemaRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.UiSchemaResponse:
        version = optional(request, "version")
        entry, form = await self._catalog.ui_schema(request.path, version)
        return catalog_pb2.UiSchemaResponse(
            catalog_id=entry.catalog_id,
            path=entry.path,
            version=entry.version,
            kind=entry.kind,
            workload_json=jsonutil.dumps(form.workload),
            ui_schema_json=jsonutil.dumps(form.schema),
        )

    async def Delete(
        self, request: catalog_pb2.CatalogServiceDeleteRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.CatalogServiceDeleteResponse:
        version = optional(request, "version")
        return catalog_pb2.CatalogServiceDeleteResponse(
            versions=_refs(await self._catalog.delete(request.path, version))
        )

    async def Restore(
        self, request: catalog_pb2.CatalogServiceRestoreRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.CatalogServiceRestoreResponse:
        version = optional(request, "version")
        return catalog_pb2.CatalogServiceRestoreResponse(
            versions=_refs(await self._catalog.restore(request.path, version))
        )
