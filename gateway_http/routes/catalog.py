"""Catalog routes → CatalogService (http-api.md §3), plus the workload form of an entry (`ui_schema`)."""

from __future__ import annotations

from noetl.v1 import catalog_pb2, catalog_pb2_grpc
from starlette.requests import Request
from starlette.responses import Response

from gateway_http.encoding import json_response
from gateway_http.openapi.build import (
    BACKEND,
    BODY,
    Operation,
    array,
    json_body,
    obj,
    ok,
    path_param,
    query_param,
    ref,
)
from gateway_http.routes import Endpoint, set_present
from gateway_http.validation import Problems, read_json
from gateway_http.views import catalog_entry, catalog_versions_body, register_batch_body, ui_schema_body

MAX_BATCH_ITEMS = 1000


class CatalogRoutes:
    def __init__(self, catalog: catalog_pb2_grpc.CatalogServiceStub, rpc_timeout: float) -> None:
        self._catalog = catalog
        self._timeout = rpc_timeout

    def endpoints(self) -> list[Endpoint]:
        change = json_body(
            obj(
                {
                    "path": {"type": "string"},
                    "version": {
                        "description": "Omitted: every version of the path",
                        "anyOf": [{"type": "integer"}, {"type": "string"}],
                    },
                },
                ["path"],
            )
        )
        return [
            Endpoint(
                "/catalog/register",
                self.register,
                ("POST",),
                Operation(
                    "catalog_register",
                    "catalog",
                    "Register a new version of a resource",
                    ok("Registered", ref("RegisterResponse")),
                    (*BODY, "500", *BACKEND),
                    description=(
                        "`content` is YAML text, base64 or raw. The path comes from `metadata.path`, `path`,"
                        " `metadata.name` or `name`; every call creates a new version. Content that is not"
                        " a YAML mapping answers 400 `Error registering resource: <error>.`"
                    ),
                    body=json_body(ref("RegisterRequest")),
                ),
            ),
            Endpoint(
                "/catalog/register/batch",
                self.register_batch,
                ("POST",),
                Operation(
                    "catalog_register_batch",
                    "catalog",
                    "Register up to 1000 resources, each independently",
                    ok("One result per item, in order", ref("RegisterBatchResponse")),
                    (*BODY, *BACKEND),
                    body=json_body(
                        obj({"items": array(ref("RegisterRequest"), minItems=1, maxItems=MAX_BATCH_ITEMS)})
                    ),
                ),
            ),
            Endpoint(
                "/catalog/list",
                self.list_entries,
                ("POST",),
                Operation(
                    "catalog_list",
                    "catalog",
                    "List catalog entries, newest first (an empty body lists everything)",
                    ok("The entries", obj({"entries": array(ref("CatalogEntry"))})),
                    (*BODY, "500", *BACKEND),
                    body=json_body(ref("CatalogListRequest"), required=False),
                ),
            ),
            Endpoint(
                "/catalog/resource",
                self.resource,
                ("POST",),
                Operation(
                    "catalog_resource",
                    "catalog",
                    "One catalog entry by id, or by path and version",
                    ok("The entry", ref("CatalogEntry")),
                    (*BODY, "404", *BACKEND),
                    description=(
                        '`catalog_id` wins over `path`; a missing or `"latest"` version means the highest'
                        " non-archived one. Neither given: 422 `Value error, At least one identifier must be"
                        " provided: catalog_id or path`. No match: 404 `Catalog entry not found`."
                    ),
                    body=json_body(
                        obj(
                            {
                                "catalog_id": ref("IdInput"),
                                "path": {"type": "string"},
                                "version": ref("VersionInput"),
                            },
                            [],
                        )
                    ),
                ),
            ),
            Endpoint(
                "/catalog/delete",
                self.delete,
                ("POST",),
                Operation(
                    "catalog_delete",
                    "catalog",
                    "Delete (or archive, when executions used them) versions of a path",
                    ok("What was removed; `count` 0 when nothing matched", ref("CatalogChange")),
                    (*BODY, *BACKEND),
                    body=change,
                ),
                internal=True,
            ),
            Endpoint(
                "/catalog/restore",
                self.restore,
                ("POST",),
                Operation(
                    "catalog_restore",
                    "catalog",
                    "Restore archived versions of a path",
                    ok("What was restored; `count` 0 when nothing matched", ref("CatalogChange")),
                    (*BODY, *BACKEND),
                    body=change,
                ),
                internal=True,
            ),
            Endpoint(
                "/catalog/{path:path}/ui_schema",
                self.ui_schema,
                ("GET",),
                Operation(
                    "catalog_ui_schema",
                    "catalog",
                    "A form description of a playbook's workload, for user interfaces",
                    ok("The form description", ref("UiSchema")),
                    ("404", "422", *BACKEND),
                    description="`path` is the catalog path and may contain `/`.",
                    parameters=(
                        path_param("path", "Catalog path", {"type": "string", "minLength": 1}),
                        query_param(
                            "version", ref("VersionInput"), "Version; omitted or `latest`: the latest"
                        ),
                    ),
                ),
            ),
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

    async def register_batch(self, request: Request) -> Response:
        """§3.2 → `RegisterBatch`: 1..1000 items, each registered on its own.

        An item that fails is reported in `results` with the detail the single route would
        answer; a malformed item (no `content`) fails the whole request with 422, as a
        Pydantic model of the items would.
        """
        problems = Problems()
        body = await read_json(request)
        fields = problems.body(body)
        raw_items = body.get("items") if isinstance(body, dict) else None
        items: list[catalog_pb2.RegisterRequest] = []
        if isinstance(raw_items, list) and len(raw_items) > MAX_BATCH_ITEMS:
            # Pydantic stops at the length check, so the items themselves go unreported.
            problems.add(
                "too_long",
                ["body", "items"],
                f"List should have at most {MAX_BATCH_ITEMS} items after validation, not {len(raw_items)}",
                raw_items,
                {"field_type": "List", "max_length": MAX_BATCH_ITEMS, "actual_length": len(raw_items)},
            )
        else:
            for item in fields.objects("items"):
                content = item.required_text("content")
                resource_type = item.text("resource_type") or "Playbook"
                items.append(catalog_pb2.RegisterRequest(content=content, resource_type=resource_type))
        problems.check()
        batch = await self._catalog.RegisterBatch(
            catalog_pb2.RegisterBatchRequest(items=items), timeout=self._timeout
        )
        return json_response(register_batch_body(batch))

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

    async def _target(self, request: Request) -> tuple[str, int | None]:
        """`path` (required, not blank) and the optional `version` of delete and restore."""
        problems = Problems()
        fields = problems.body(await read_json(request))
        path = fields.non_blank_text("path")
        version = fields.version("version", latest=False)
        problems.check()
        return path, version

    async def delete(self, request: Request) -> Response:
        """§3.5 → `Delete` (behind the internal token gate); nothing to delete is 200 with `count: 0`."""
        path, version = await self._target(request)
        query = catalog_pb2.CatalogServiceDeleteRequest(path=path)
        set_present(query, version=version)
        deleted = (await self._catalog.Delete(query, timeout=self._timeout)).versions
        message = (
            f"Removed {len(deleted)} version(s) of catalog entry '{path}'."
            if deleted
            else f"No catalog entries for '{path}'; nothing removed."
        )
        return json_response(catalog_versions_body(path, message, deleted))

    async def restore(self, request: Request) -> Response:
        """§3.5 → `Restore` (behind the internal token gate)."""
        path, version = await self._target(request)
        query = catalog_pb2.CatalogServiceRestoreRequest(path=path)
        set_present(query, version=version)
        restored = (await self._catalog.Restore(query, timeout=self._timeout)).versions
        message = (
            f"Restored {len(restored)} archived version(s) of '{path}'."
            if restored
            else f"No archived entries for '{path}'; nothing restored."
        )
        return json_response(catalog_versions_body(path, message, restored))

    async def ui_schema(self, request: Request) -> Response:
        """`GET /api/catalog/{path...}/ui_schema[?version=N|latest]` → `UiSchema`.

        The path may hold slashes; an unknown one is 404 `Catalog entry not found`.
        """
        problems = Problems()
        version = problems.query(request).version("version", latest=True)
        problems.check()
        query = catalog_pb2.UiSchemaRequest(path=request.path_params["path"])
        set_present(query, version=version)
        form = await self._catalog.UiSchema(query, timeout=self._timeout)
        return json_response(ui_schema_body(form))
