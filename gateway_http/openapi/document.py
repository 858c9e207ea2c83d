"""The document, assembled from the app's endpoints, and the route that serves it (`GET /openapi.json`).

Shapes, statuses and messages are the spec's; where the spec leaves a shape open (`ui_schema`,
the events batch status) the document says only what every answer has. Paths are grouped by tag,
in the order of `TAGS`, and keep the route table's order within a tag.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from gateway_http.encoding import dumps
from gateway_http.http_auth import required_level
from gateway_http.openapi import schemas_common, schemas_runs, schemas_services
from gateway_http.openapi.build import JSON, Operation, Schema, ok
from gateway_http.openapi.schemas_common import auth_responses, error_responses
from gateway_http.routes import Endpoint
from kernel.metrics import BUILD_VERSION

DOCS_FILE = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"

DESCRIPTION = """\
The NoETL control plane HTTP API, served by the noetl-mesh gateway (contract: http-api.md).

- Every `/api/x` route is also served as `/noetl/x` with identical behaviour (the prefix the
  `noetl` CLI uses in gateway mode), except `/api/runtime/contract`, which is only under `/api`.
  This document lists the `/api` form; `/health`, `/metrics` and `/openapi.json` are root routes.
- Responses are compact UTF-8 JSON, keys in the order shown by the contract; `null` values are
  sent, not omitted.
- Ids are 64-bit snowflakes above 2^53: an id the contract sends as a string is a decimal
  string here, and every id input accepts a JSON number or a decimal string.
- Errors are `{"detail": "<message>"}` (or `{"detail": {"code": ...}}` for structured errors);
  request validation answers 422 with FastAPI's list form
  `{"detail": [{"type", "loc", "msg", "input", "ctx"?}]}`. Unknown routes answer 404
  `{"detail": "Not Found"}`, a wrong method 405 `{"detail": "Method Not Allowed"}`, a request
  running past 1799 s 504. A backend that is down or saturated answers 503, with `Retry-After`.
- `/api/internal/*` and catalog delete/restore are behind the internal token gate:
  `Authorization: Bearer <NOETL_INTERNAL_API_TOKEN>`, checked before the body is read
  (503 when no token is configured, 403 for a missing, malformed or wrong token).
- HTTP authentication is optional and off by default, hence the anonymous `{}` alternative of
  the global `security`. With `NOETL_HTTP_AUTH=bearer` (docs/security.md) every operation that
  lists 401 and 403 needs `Authorization: Bearer <token>` (or `x-session-token`) with the `read`,
  `write` or `admin` level, answering 401 without an accepted token and 403 without the level;
  operations with an empty `security` stay open, and the internal ones keep their own gate.
"""

TAGS = [
    {"name": "health", "description": "Liveness, metrics and pool telemetry (http-api.md §2)"},
    {"name": "catalog", "description": "Versioned playbooks and other resources (§3)"},
    {"name": "executions", "description": "Starting, inspecting and stopping executions (§4)"},
    {"name": "events", "description": "Worker result ingest and event results (§5)"},
    {"name": "commands", "description": "The claim protocol (§6)"},
    {
        "name": "runtime",
        "description": "Worker pools, shard arithmetic, the runtime contract, this document (§7)",
    },
    {"name": "variables", "description": "Execution-scoped variables (§8)"},
    {"name": "credentials", "description": "Credentials and the keychain (§9)"},
    {"name": "results", "description": "The result store (§10)"},
    {"name": "database", "description": "Database utilities (§11)"},
    {"name": "internal", "description": "Token-gated internal API: outbox, projection, wallet (§12)"},
]

_TAG_ORDER = {tag["name"]: index for index, tag in enumerate(TAGS)}


class DocumentRoute:
    """`GET /openapi.json` (root only, like `/health`): the document of the app's other endpoints
    and of itself, encoded once (it only changes with the code)."""

    def __init__(self, endpoints: Sequence[Endpoint]) -> None:
        self.endpoint = Endpoint(
            "/openapi.json",
            self.serve,
            ("GET",),
            Operation(
                "openapi",
                "runtime",
                "This document",
                ok("The OpenAPI 3.1 document of the gateway", {"type": "object"}),
            ),
            root=True,
        )
        self._body = dumps(document([*endpoints, self.endpoint]))

    async def serve(self, request: Request) -> Response:
        return Response(self._body, media_type=JSON)


def document(endpoints: Iterable[Endpoint]) -> Schema:
    paths: dict[str, Schema] = {}
    for endpoint in sorted(endpoints, key=lambda endpoint: _TAG_ORDER[endpoint.doc.tag]):
        item = paths.setdefault(endpoint.api_path, {})
        for index, method in enumerate(endpoint.methods):
            suffix = f"_{method.lower()}" if index else ""
            item[method.lower()] = _operation(endpoint, method, endpoint.doc.operation_id + suffix)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "NoETL control plane HTTP API",
            "version": BUILD_VERSION,
            "description": DESCRIPTION,
        },
        "tags": TAGS,
        "security": [{"bearerAuth": []}, {"sessionToken": []}, {}],
        "paths": paths,
        "components": {
            "schemas": {**schemas_common.schemas(), **schemas_runs.schemas(), **schemas_services.schemas()},
            "responses": schemas_common.responses(),
            "securitySchemes": schemas_common.security_schemes(),
        },
    }


def _operation(endpoint: Endpoint, method: str, operation_id: str) -> Schema:
    doc = endpoint.doc
    operation: Schema = {"operationId": operation_id, "tags": [doc.tag], "summary": doc.summary}
    if doc.description:
        operation["description"] = doc.description
    if doc.parameters:
        operation["parameters"] = list(doc.parameters)
    if doc.body is not None:
        operation["requestBody"] = doc.body
    responses = {**doc.responses, **error_responses(*doc.errors)}
    # HTTP auth's own rules say which operations it guards: the document cannot drift from them.
    guarded = required_level(method, endpoint.api_path, b"") is not None
    if endpoint.internal:
        operation["security"] = [{"internalToken": []}]
        responses |= error_responses("403", "503")
    elif not guarded:
        operation["security"] = []
    if guarded:
        responses |= auth_responses()
    operation["responses"] = dict(sorted(responses.items()))
    return operation


def render(document: Schema) -> str:
    """The document as `docs/openapi.json` holds it: indented for reading, one trailing newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
