"""The result store → ResultService on the execution's shard (http-api.md §10).

Both routes know their shard: `PUT` from the path's execution id, `resolve` from the execution id
inside the reference. Scope, store tier and ttl are checked by the service (400 with the
contract's messages); the gateway checks the body's shape (422).
"""

from __future__ import annotations

from typing import Any

from noetl.v1 import results_pb2
from starlette.requests import Request
from starlette.responses import Response

from gateway_http.clients import ExecutionShard
from gateway_http.encoding import json_response
from gateway_http.formatting import timestamp
from gateway_http.openapi.build import BACKEND, BODY, EXECUTION_ID, Operation, json_body, ok, query_param, ref
from gateway_http.routes import Endpoint, set_present
from gateway_http.validation import Fields, Problems, read_json
from kernel import jsonutil
from kernel.grpc_client import Sharded
from language.result_refs import parse_ref


class ResultRoutes:
    def __init__(self, execution: Sharded[ExecutionShard], rpc_timeout: float) -> None:
        self._execution = execution
        self._timeout = rpc_timeout

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "/result/resolve",
                self.resolve,
                ("GET",),
                Operation(
                    "result_resolve",
                    "results",
                    "The stored JSON value of a result reference, as stored (resolved secrets were replaced"
                    " by the writer)",
                    ok("The value itself, any JSON type", {}),
                    ("400", "404", "422", *BACKEND),
                    parameters=(
                        query_param(
                            "ref",
                            {"type": "string"},
                            "`noetl://execution/<id>/result/<name>/<id>`",
                            required=True,
                        ),
                    ),
                ),
            ),
            Endpoint(
                "/result/{execution_id}",
                self.put,
                ("PUT",),
                Operation(
                    "result_put",
                    "results",
                    "Store a result (secrets in `data` and `correlation` are scrubbed)",
                    ok("Stored", ref("ResultStored")),
                    (*BODY, *BACKEND),
                    description=(
                        "400 `Invalid scope: <s>. Use: step, execution, workflow, permanent`, `Invalid store"
                        " tier: <s>`, or an invalid `ttl`. Bodies up to at least 64 MiB are accepted."
                    ),
                    parameters=(EXECUTION_ID,),
                    body=json_body(ref("ResultRequest")),
                ),
            ),
        ]

    async def put(self, request: Request) -> Response:
        """§10.1 → `Put`: `{ref, store, scope, expires_at, bytes, sha256}`."""
        problems = Problems()
        execution_id = problems.path_id(request, "execution_id")
        raw = await read_json(request)
        fields = problems.body(raw)
        name = fields.required_text("name")
        if isinstance(raw, dict) and "data" not in raw:
            problems.add("missing", ["body", "data"], "Field required", raw)
        scope = fields.text("scope")
        store = fields.text("store")
        ttl = _ttl(raw, fields)
        source_step = fields.text("source_step")
        correlation = fields.mapping("correlation")
        extracted = fields.mapping("extracted")
        compress = fields.flag("compress", False)
        problems.check()
        message = results_pb2.ResultServicePutRequest(
            execution_id=execution_id,
            name=name,
            data_json=jsonutil.dumps(raw["data"]),
            correlation_json=jsonutil.dumps(correlation),
            extracted_json=jsonutil.dumps(extracted),
            compress=compress,
        )
        set_present(message, scope=scope, store=store, ttl=ttl, source_step=source_step)
        stored = await self._execution.for_execution(execution_id).results.Put(message, timeout=self._timeout)
        return json_response(
            {
                "ref": stored.ref,
                "store": stored.store,
                "scope": stored.scope,
                "expires_at": timestamp(stored.expires_at) if stored.HasField("expires_at") else None,
                "bytes": stored.bytes,
                "sha256": stored.sha256,
            }
        )

    async def resolve(self, request: Request) -> Response:
        """§10.2 → `Resolve`: the stored JSON value itself; 400 for a malformed `ref`, 404 for an
        unknown or expired one."""
        problems = Problems()
        ref = problems.query(request).required_text("ref")
        problems.check()
        owner = self._execution.for_execution(parse_ref(ref).execution_id)
        found = await owner.results.Resolve(
            results_pb2.ResultServiceResolveRequest(ref=ref), timeout=self._timeout
        )
        return json_response(jsonutil.loads(found.data_json))


def _ttl(raw: Any, fields: Fields) -> str | None:
    """`ttl` as text: a JSON number counts as seconds, as `"3600"` does."""
    value = raw.get("ttl") if isinstance(raw, dict) else None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return fields.text("ttl")
