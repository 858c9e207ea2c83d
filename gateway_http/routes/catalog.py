"""Catalog routes → CatalogService (http-api.md §3.1, §3.3, §3.4)."""

from __future__ import annotations

from noetl.v1 import catalog_pb2, catalog_pb2_grpc
from starlette.requests import Request
from starlette.responses import Response

from gateway_http.encoding import json_response
from gateway_http.routes import Endpoint, set_present
from gateway_http.validation import Problems, read_json
from gateway_http.views import catalog_entry


class CatalogRoutes:
    def __init__(self, catalog: catalog_pb2_grpc.CatalogServiceStub, rpc_timeout: float) -> None:
        self._catalog = catalog
        self._timeout = rpc_timeout

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint("/catalog/register", self.register, ("POST",)),
            Endpoint("/catalog/list", self.list_entries, ("POST",)),
            Endpoint("/catalog/resource", self.resource, ("POST",)),
        ]

    async def register(self, request: Request) -> Response:
        """§3.1 → `Register`.

        Deliberate deviation: content that is not a YAML mapping answers 400 (the service's
        InvalidArgument, detail "Error registering resource: ..."), where the reference answers
        500 — it is the caller's input that is wrong.
        """
        problems = Problems()
        fields = problems.body(await read_json(request))
        content = fields.required_text("content")
        resource_type = fields.text("resource_type") or "Playbook"
        problems.check()
        registered = await self._catalog.Register(
            catalog_pb2.RegisterRequest(content=content, resource_type=resource_type), timeout=self._timeout
        )
        return json_response(
            {
                "status": "success",
                "message": f"Resource '{registered.path}' version '{registered.version}' registered.",
                "path": registered.path,
                "version": registered.version,
                "catalog_id": str(registered.catalog_id),
                "kind": registered.kind,
            }
        )

    async def list_entries(self, request: Request) -> Response:
        """§3.3 → `List`. An empty body lists everything, like `{}`.

        The catalog normalises `resource_type` through its alias table (`Secrets` → `credential`).
        """
        problems = Problems()
        fields = problems.body(await read_json(request, required=False))
        resource_type = fields.text("resource_type")
        path = fields.text("path")
        agent_only = fields.flag("agent_only", False)
        capability = fields.text("capability")
        capabilities = fields.strings("capabilities")
        include_archived = fields.flag("include_archived", False)
        problems.check()
        query = catalog_pb2.ListRequest(
            agent_only=agent_only,
            capabilities=[capability, *capabilities] if capability else capabilities,
            include_archived=include_archived,
        )
        set_present(query, resource_type=resource_type or None, path=path or None)
        listed = await self._catalog.List(query, timeout=self._timeout)
        return json_response({"entries": [catalog_entry(entry) for entry in listed.entries]})

    async def resource(self, request: Request) -> Response:
        """§3.4 → `GetResource`; `catalog_id` wins over `path`, a missing or "latest" version means latest."""
        problems = Problems()
        fields = problems.body(await read_json(request))
        catalog_id = fields.identifier("catalog_id")
        path = fields.text("path")
        version = fields.version("version", latest=True)
        if not catalog_id and not path:
            fields.value_error("At least one identifier must be provided: catalog_id or path")
        problems.check()
        query = catalog_pb2.GetResourceRequest()
        set_present(query, catalog_id=catalog_id or None, path=path or None, version=version)
        found = await self._catalog.GetResource(query, timeout=self._timeout)
        return json_response(catalog_entry(found.entry))
