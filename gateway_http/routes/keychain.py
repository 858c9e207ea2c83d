"""Keychain routes → SecretsService (http-api.md §9.5; data-model.md §9.8).

`/keychain/catalog/{catalog_id}` is declared before `/keychain/{catalog_id}/{keychain_name}`,
which would otherwise take `catalog` for a catalog id.
"""

from __future__ import annotations

from noetl.v1 import secrets_pb2, secrets_pb2_grpc
from starlette.requests import Request
from starlette.responses import Response

from gateway_http import wallet_views
from gateway_http.encoding import json_response
from gateway_http.openapi.build import (
    BACKEND,
    BODY,
    Operation,
    json_body,
    obj,
    ok,
    path_param,
    query_param,
    ref,
)
from gateway_http.openapi.schemas_services import SCOPE_TYPES
from gateway_http.routes import Endpoint, set_present
from gateway_http.routes.credentials import HTTP_CALLER, required_object
from gateway_http.validation import Problems, read_json
from kernel import jsonutil


class KeychainRoutes:
    def __init__(self, secrets: secrets_pb2_grpc.SecretsServiceStub, rpc_timeout: float) -> None:
        self._secrets = secrets
        self._timeout = rpc_timeout

    def endpoints(self) -> list[Endpoint]:
        catalog_id = path_param("catalog_id", "Catalog id of the playbook")
        entry = (
            catalog_id,
            path_param("keychain_name", "Keychain entry name", {"type": "string", "minLength": 1}),
        )
        scope = (
            query_param("execution_id", ref("IdText"), "Execution of a `local` entry"),
            query_param("scope_type", {"type": "string", "enum": SCOPE_TYPES, "default": "global"}, "Scope"),
        )
        return [
            # Before `/keychain/{catalog_id}/{keychain_name}`, which would take `catalog` for an id.
            Endpoint(
                "/keychain/catalog/{catalog_id}",
                self.list_entries,
                ("GET",),
                Operation(
                    "keychain_list",
                    "credentials",
                    "Keychain entries of a playbook, metadata only",
                    ok("The entries", ref("KeychainList")),
                    ("422", *BACKEND),
                    parameters=(catalog_id,),
                ),
            ),
            Endpoint(
                "/keychain/{catalog_id}/{keychain_name}",
                self.get,
                ("GET",),
                Operation(
                    "keychain_get",
                    "credentials",
                    "Read a keychain entry (bumps `access_count`)",
                    ok("success, expired or not_found", ref("KeychainRead")),
                    ("422", "500", *BACKEND),
                    parameters=(*entry, *scope),
                ),
            ),
            Endpoint(
                "/keychain/{catalog_id}/{keychain_name}",
                self.set,
                ("POST",),
                Operation(
                    "keychain_set",
                    "credentials",
                    "Cache a keychain entry",
                    ok("Cached", ref("KeychainCached")),
                    (*BODY, *BACKEND),
                    description="An unknown `scope_type` or `cache_type` answers 400.",
                    parameters=entry,
                    body=json_body(ref("KeychainRequest")),
                ),
            ),
            Endpoint(
                "/keychain/{catalog_id}/{keychain_name}",
                self.delete,
                ("DELETE",),
                Operation(
                    "keychain_delete",
                    "credentials",
                    "Delete a keychain entry (`status: error` when nothing was deleted)",
                    ok(
                        "Deleted or not found",
                        obj(
                            {
                                "status": {"type": "string", "enum": ["success", "error"]},
                                "message": {"type": "string"},
                                "keychain_name": {"type": "string"},
                                "catalog_id": ref("IdNumber"),
                            }
                        ),
                    ),
                    ("422", *BACKEND),
                    parameters=(*entry, *scope),
                ),
            ),
        ]

    async def set(self, request: Request) -> Response:
        """POST → `SetKeychain`: `ttl_seconds` wins over `expires_at`; neither = the scope's default."""
        problems = Problems()
        catalog_id = problems.path_id(request, "catalog_id")
        name = request.path_params["keychain_name"]
        raw = await read_json(request)
        fields = problems.body(raw)
        token_data = required_object(raw, "token_data", problems)
        credential_type = fields.required_text("credential_type")
        cache_type = fields.text("cache_type") or "token"
        scope_type = fields.text("scope_type") or "global"
        execution_id = fields.identifier("execution_id")
        parent_execution_id = fields.identifier("parent_execution_id")
        ttl_seconds = fields.identifier("ttl_seconds")
        expires_at = fields.timestamp("expires_at")
        auto_renew = fields.flag("auto_renew", False)
        renew_config = fields.mapping("renew_config")
        problems.check()
        message = secrets_pb2.SetKeychainRequest(
            catalog_id=catalog_id,
            keychain_name=name,
            data_json=jsonutil.dumps(token_data),
            credential_type=credential_type,
            cache_type=cache_type,
            scope_type=scope_type,
            auto_renew=auto_renew,
            renew_config_json=jsonutil.dumps(renew_config),
        )
        set_present(
            message,
            execution_id=execution_id,
            parent_execution_id=parent_execution_id,
            ttl_seconds=ttl_seconds,
        )
        if expires_at is not None:
            message.expires_at.FromDatetime(expires_at)
        cached = await self._secrets.SetKeychain(message, timeout=self._timeout)
        return json_response(wallet_views.keychain_cached(name, catalog_id, cached))

    async def get(self, request: Request) -> Response:
        """GET → `GetKeychain`; a successful read bumps `access_count` and is audited."""
        catalog_id, name, execution_id, scope_type = _entry_address(request)
        message = secrets_pb2.GetKeychainRequest(
            catalog_id=catalog_id,
            keychain_name=name,
            scope_type=scope_type,
            accessor=secrets_pb2.Accessor(caller=HTTP_CALLER),
        )
        set_present(message, execution_id=execution_id)
        set_present(message.accessor, execution_id=execution_id, catalog_id=catalog_id)
        read = await self._secrets.GetKeychain(message, timeout=self._timeout)
        return json_response(wallet_views.keychain_read(name, catalog_id, read))

    async def delete(self, request: Request) -> Response:
        catalog_id, name, execution_id, scope_type = _entry_address(request)
        message = secrets_pb2.DeleteKeychainRequest(
            catalog_id=catalog_id, keychain_name=name, scope_type=scope_type
        )
        set_present(message, execution_id=execution_id)
        deleted = await self._secrets.DeleteKeychain(message, timeout=self._timeout)
        return json_response(wallet_views.keychain_deleted(name, catalog_id, deleted.deleted))

    async def list_entries(self, request: Request) -> Response:
        problems = Problems()
        catalog_id = problems.path_id(request, "catalog_id")
        problems.check()
        listed = await self._secrets.ListKeychain(
            secrets_pb2.ListKeychainRequest(catalog_id=catalog_id), timeout=self._timeout
        )
        return json_response(wallet_views.keychain_list(catalog_id, list(listed.entries)))


def _entry_address(request: Request) -> tuple[int, str, int | None, str]:
    """(catalog_id, keychain_name, execution_id, scope_type) of a GET or DELETE (§9.5).

    Raises:
        RequestInvalid: a non-numeric catalog id or execution id (422).
    """
    problems = Problems()
    catalog_id = problems.path_id(request, "catalog_id")
    query = problems.query(request)
    execution_id = query.identifier("execution_id")
    scope_type = query.text("scope_type") or "global"
    problems.check()
    return catalog_id, request.path_params["keychain_name"], execution_id, scope_type
