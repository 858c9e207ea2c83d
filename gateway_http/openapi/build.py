"""Building blocks of the OpenAPI document, and `Operation`: what a route declares about itself.

Plain data: schemas are dicts, as they appear in the document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Schema = dict[str, Any]

JSON = "application/json"

# Every route that calls a service can answer 503 (service down or saturated) and 504 (§1.1).
BACKEND = ("503", "504")
# A route that reads a JSON body: 400 for a body that is not text, 413 for one over the route's
# limit, 422 for one that is not JSON or fails validation (including nesting, NUL, lone surrogates).
BODY = ("400", "413", "422")


@dataclass(frozen=True, slots=True)
class Operation:
    """The OpenAPI operation of one route, declared beside its `Endpoint`.

    `responses` holds the route's own answers (its success, and any answer of a shape of its
    own); `errors` names by status the shared error responses it can also give. What follows
    from the `Endpoint` itself (the internal token gate) or from the HTTP auth rules (401/403)
    is added when the document is assembled. An endpoint serving several methods documents this
    operation under each, the later ones with `_<method>` appended to `operation_id`.
    """

    operation_id: str
    tag: str
    summary: str
    responses: Mapping[str, Schema]
    errors: tuple[str, ...] = ()
    description: str | None = None
    parameters: tuple[Schema, ...] = ()
    body: Schema | None = None


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def response_ref(name: str) -> Schema:
    return {"$ref": f"#/components/responses/{name}"}


def obj(properties: dict[str, Schema], required: list[str] | None = None, **extra: Any) -> Schema:
    """An object schema; `required` defaults to every property (the contract's fixed key sets)."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        **extra,
    }


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


def ok(description: str, schema: Schema, status: str = "200") -> dict[str, Schema]:
    return {status: {"description": description, "content": {JSON: {"schema": schema}}}}


def json_body(schema: Schema, *, required: bool = True) -> Schema:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def path_param(name: str, description: str, schema: Schema | None = None) -> Schema:
    """A path parameter; the default schema is an id as decimal text."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or ref("IdText"),
    }


def query_param(name: str, schema: Schema, description: str, *, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


def header_param(name: str, description: str) -> Schema:
    """An optional string request header."""
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }


def retry_after() -> Schema:
    return {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}


# The path parameter of every route under `/executions/{execution_id}`, `/vars/...` and `/result/...`.
EXECUTION_ID = path_param("execution_id", "Execution id")
