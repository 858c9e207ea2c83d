"""Credential routes → SecretsService (http-api.md §9.1-§9.4, §13.5; cli-wire.md §4.10, §4.11).

`POST /api/credentials` reproduces the reference's Pydantic model: `name` (anything truthy is
turned into text and trimmed, then must be non-empty), `type` ≡ `credential_type` (the latter
wins; empty means `generic`), `data` an object, `meta` an object or null, `tags` a list or a
comma-separated string, `description` text or null.
"""

from __future__ import annotations

from typing import Any

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
from gateway_http.routes import Endpoint, set_present
from gateway_http.validation import Fields, Problems, read_json
from kernel import jsonutil

HTTP_CALLER = "http"
_NOT_A_STRING = "Input should be a valid string"
_NOT_A_DICT = "Input should be a valid dictionary"


def _name(body: dict[str, Any], problems: Problems) -> str:
    if "name" not in body:
        problems.add("missing", ["body", "name"], "Field required", body)
        return ""
    value = body["name"]
    name = str(value).strip() if value else value
    if not isinstance(name, str):
        problems.add("string_type", ["body", "name"], _NOT_A_STRING, value)
        return ""
    if not name:
        ctx = {"min_length": 1}
        problems.add(
            "string_too_short", ["body", "name"], "String should have at least 1 character", name, ctx
        )
    return name


def required_object(raw: Any, name: str, problems: Problems) -> dict[str, Any] | None:
    """A required JSON-object field (`Dict[str, Any]` in the reference); None after reporting.

    A body that is not an object was reported already (`Problems.body`).
    """
    if not isinstance(raw, dict):
        return None
    if name not in raw:
        problems.add("missing", ["body", name], "Field required", raw)
        return None
    value = raw[name]
    if not isinstance(value, dict):
        problems.add("dict_type", ["body", name], _NOT_A_DICT, value)
        return None
    return value


def _type(body: dict[str, Any]) -> str:
    value = body["credential_type"] if "credential_type" in body else body.get("type")
    return str(value).strip() if value else "generic"


def _tags(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [tag.strip() for tag in value.split(",") if tag.strip()]
    if isinstance(value, list):
        return [str(tag) for tag in value]
    return [str(value)]


class CredentialRoutes:
    def __init__(self, secrets: secrets_pb2_grpc.SecretsServiceStub, rpc_timeout: float) -> None:
        self._secrets = secrets
        self._timeout = rpc_timeout

    def endpoints(self) -> list[Endpoint]:
        identifier = path_param(
            "identifier",
            "All digits: a credential id; otherwise a name (may contain `/`)",
            {"type": "string", "minLength": 1},
        )
        return [
            Endpoint(
                "/credentials",
                self.create,
                ("POST",),
                Operation(
                    "credential_put",
                    "credentials",
                    "Create or replace a credential (upsert by name)",
                    ok("Stored; `data` is null", ref("Credential")),
                    (*BODY, *BACKEND),
                    body=json_body(ref("CredentialRequest")),
                ),
            ),
            Endpoint(
                "/credentials",
                self.list_credentials,
                ("GET",),
                Operation(
                    "credential_list",
                    "credentials",
                    "Credentials, without data",
                    ok("The credentials", ref("CredentialList")),
                    ("422", *BACKEND),
                    parameters=(
                        query_param("type", {"type": "string"}, "Exact type"),
                        query_param("q", {"type": "string"}, "Substring of the name or description"),
                    ),
                ),
            ),
            # `:path`: the CLI sends names with `/` unencoded (cli-wire.md §1).
            Endpoint(
                "/credentials/{identifier:path}",
                self.get,
                ("GET",),
                Operation(
                    "credential_get",
                    "credentials",
                    "One credential; its data only with `include_data=true` (audited)",
                    ok("The credential", ref("Credential")),
                    ("400", "404", "409", "422", "500", *BACKEND),
                    description=(
                        "With `include_data=true` and an `execution_id`, a name that is no stored credential"
                        " is resolved as a keychain alias of that execution's playbook. 404 `Credential not"
                        " found`; 500 when stored data cannot be decrypted."
                    ),
                    parameters=(
                        identifier,
                        query_param(
                            "include_data", {"type": "boolean", "default": False}, "Return the decrypted data"
                        ),
                        query_param(
                            "execution_id", ref("IdText"), "Recorded in the audit; keychain resolution"
                        ),
                        query_param("parent_execution_id", ref("IdText"), "Recorded in the audit"),
                        query_param("catalog_id", ref("IdText"), "Recorded in the audit"),
                    ),
                ),
            ),
            Endpoint(
                "/credentials/{identifier:path}",
                self.delete,
                ("DELETE",),
                Operation(
                    "credential_delete",
                    "credentials",
                    "Delete a credential",
                    ok(
                        "Deleted",
                        obj(
                            {"message": {"type": "string"}, "id": ref("IdString"), "name": {"type": "string"}}
                        ),
                    ),
                    ("404", *BACKEND),
                    parameters=(identifier,),
                ),
            ),
        ]

    async def create(self, request: Request) -> Response:
        """§9.1 → `PutCredential`: upsert by name; the answer never carries data."""
        problems = Problems()
        raw = await read_json(request)
        body = raw if isinstance(raw, dict) else {}
        fields = problems.body(raw)
        name = _name(body, problems) if isinstance(raw, dict) else ""
        type_ = _type(body)
        data = required_object(raw, "data", problems)
        meta = fields.mapping("meta")
        tags = _tags(body.get("tags"))
        description = fields.text("description")
        problems.check()
        message = secrets_pb2.PutCredentialRequest(
            name=name, type=type_, data_json=jsonutil.dumps(data), meta_json=jsonutil.dumps(meta)
        )
        if tags is not None:
            message.tags.values.extend(tags)
        set_present(message, description=description)
        put = await self._secrets.PutCredential(message, timeout=self._timeout)
        return json_response(wallet_views.credential(put.credential))

    async def list_credentials(self, request: Request) -> Response:
        """§9.2 → `ListCredentials`: `type` exact, `q` a substring of name or description."""
        problems = Problems()
        query = problems.query(request)
        type_ = query.text("type")
        q = query.text("q")
        problems.check()
        message = secrets_pb2.ListCredentialsRequest()
        set_present(message, type=type_, q=q)
        listed = await self._secrets.ListCredentials(message, timeout=self._timeout)
        return json_response(wallet_views.credential_list(list(listed.credentials), type_, q))

    async def get(self, request: Request) -> Response:
        """§9.3 → `GetCredential`; data only with `include_data=true`, then audited."""
        problems = Problems()
        query = problems.query(request)
        include_data = query.flag("include_data", False)
        accessor = _accessor(query)
        problems.check()
        found = await self._secrets.GetCredential(
            secrets_pb2.GetCredentialRequest(
                identifier=request.path_params["identifier"], include_data=include_data, accessor=accessor
            ),
            timeout=self._timeout,
        )
        body = wallet_views.credential(found.credential)
        if not include_data:
            body["data"] = None
        return json_response(body)

    async def delete(self, request: Request) -> Response:
        """§9.4 → `DeleteCredential`."""
        deleted = await self._secrets.DeleteCredential(
            secrets_pb2.DeleteCredentialRequest(identifier=request.path_params["identifier"]),
            timeout=self._timeout,
        )
        return json_response(
            {"message": "Credential deleted successfully", "id": str(deleted.id), "name": deleted.name}
        )


def _accessor(query: Fields) -> secrets_pb2.Accessor:
    accessor = secrets_pb2.Accessor(caller=HTTP_CALLER)
    set_present(
        accessor,
        execution_id=query.identifier("execution_id"),
        parent_execution_id=query.identifier("parent_execution_id"),
        catalog_id=query.identifier("catalog_id"),
    )
    return accessor
