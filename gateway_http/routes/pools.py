"""Worker pools → PoolService (http-api.md §7.1-§7.4).

`noetl.runtime` is cluster-wide, so every call goes to the execution service of shard 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from noetl.v1 import pools_pb2
from starlette.requests import Request
from starlette.responses import Response

from gateway_http.clients import ExecutionShard
from gateway_http.encoding import dumps, json_response
from gateway_http.formatting import timestamp
from gateway_http.openapi.build import (
    BACKEND,
    BODY,
    JSON,
    Operation,
    json_body,
    obj,
    ok,
    query_param,
    ref,
    retry_after,
)
from gateway_http.routes import Endpoint, set_present
from gateway_http.validation import INT32_MAX, Fields, Problems, read_json
from gateway_http.views import in_order
from kernel import jsonutil
from kernel.errors import MeshError
from kernel.grpc_client import Sharded
from kernel.wire import optional
from language.runtime_kinds import KINDS, WORKER_POOL

# http-api.md §7.4 lists a runtime's keys in this order; JSONB keeps its own (shorter keys first).
RUNTIME_KEYS = ("type", "pid", "hostname")
# Pydantic's wording for a `Literal[...]` field.
_EXPECTED_KIND = ", ".join(f"'{kind}'" for kind in KINDS[:-1]) + f" or '{KINDS[-1]}'"


@dataclass(frozen=True, slots=True)
class _Registration:
    message: pools_pb2.PoolRegistration
    # What the request sent as `runtime` (a string, an object or null): the answer echoes it.
    runtime: Any


class PoolRoutes:
    def __init__(
        self,
        execution: Sharded[ExecutionShard],
        rpc_timeout: float,
        *,
        default_pool_name: str,
        auto_recreate: bool,
    ) -> None:
        self._registry = execution.all()[0].pools
        self._timeout = rpc_timeout
        self._default_name = default_pool_name
        self._auto_recreate = auto_recreate

    def endpoints(self) -> list[Endpoint]:
        unknown = {
            "404": {
                "description": 'Unknown pool and no re-create: `{"detail": {"status": "unknown", ...}}`',
                "headers": {"Retry-After": retry_after()},
                "content": {JSON: {"schema": ref("StructuredError")}},
            }
        }
        return [
            Endpoint(
                "/worker/pool/register",
                self.register,
                ("POST",),
                Operation(
                    "worker_pool_register",
                    "runtime",
                    "Register (upsert) a worker pool",
                    ok("Registered", ref("PoolRegistered")),
                    (*BODY, *BACKEND),
                    body=json_body(ref("PoolRegistration")),
                ),
            ),
            Endpoint(
                "/worker/pool/deregister",
                self.deregister,
                ("POST", "DELETE"),
                Operation(
                    "worker_pool_deregister",
                    "runtime",
                    "Mark a worker pool offline (an unknown name is not an error)",
                    ok("Deregistered", ref("PoolDeregistered")),
                    (*BODY, *BACKEND),
                    body=json_body(
                        obj(
                            {
                                "name": {"type": "string"},
                                "kind": {"type": "string"},
                                "component_type": {"type": "string", "description": "Alias of `kind`"},
                            },
                            ["name"],
                        )
                    ),
                ),
            ),
            Endpoint(
                "/worker/pool/heartbeat",
                self.heartbeat,
                ("POST",),
                Operation(
                    "worker_pool_heartbeat",
                    "runtime",
                    "Heartbeat of a worker pool",
                    {**ok("Alive (`ok`) or re-created (`recreated`)", ref("PoolHeartbeat")), **unknown},
                    (*BODY, *BACKEND),
                    body=json_body(
                        obj(
                            {
                                "name": {
                                    "type": "string",
                                    "description": "Omitted: the gateway's configured pool",
                                },
                                "registration": ref("PoolRegistration"),
                            },
                            [],
                        ),
                        required=False,
                    ),
                ),
            ),
            Endpoint(
                "/worker/pools",
                self.pools,
                ("GET",),
                Operation(
                    "worker_pools",
                    "runtime",
                    "Registered worker pools (a database error is a 200 with `error` set)",
                    ok("The pools", ref("PoolList")),
                    ("422", *BACKEND),
                    parameters=(
                        query_param("runtime", {"type": "string"}, "Matches `runtime.type`"),
                        query_param("status", {"type": "string"}, "Exact status"),
                    ),
                ),
            ),
        ]

    async def register(self, request: Request) -> Response:
        """§7.1: upsert by (kind, name), kind forced to `worker_pool`."""
        problems = Problems()
        body = await read_json(request)
        registration = _registration(problems.body(body), body, problems, ("body",), name_required=True)
        problems.check()
        registered = await self._registry.Register(
            pools_pb2.PoolServiceRegisterRequest(registration=registration.message), timeout=self._timeout
        )
        return json_response(
            {
                "status": "ok",
                "name": registration.message.name,
                "runtime_id": str(registered.runtime_id),
                "runtime": registration.runtime,
                "kind": WORKER_POOL,
            }
        )

    async def deregister(self, request: Request) -> Response:
        """§7.2: status `offline`; an unknown name is not an error."""
        problems = Problems()
        fields = problems.body(await read_json(request))
        name = fields.non_blank_text("name").strip()
        kind = _kind(fields, problems)
        problems.check()
        await self._registry.Deregister(
            pools_pb2.PoolServiceDeregisterRequest(name=name, kind=kind), timeout=self._timeout
        )
        return json_response(
            {"status": "ok", "name": name, "runtime_id": None, "runtime": None, "kind": kind}
        )

    async def heartbeat(self, request: Request) -> Response:
        """§7.3. Without `name` the gateway's configured pool is meant; with none configured the
        heartbeat is a no-op. `registration` re-creates an unknown pool only while auto-recreate
        is on; otherwise an unknown pool answers 404 `{"status": "unknown", "name": ...}`.
        """
        problems = Problems()
        body = await read_json(request, required=False)
        fields = problems.body(body)
        name = (fields.text("name") or "").strip() or self._default_name
        registration: _Registration | None = None
        raw_registration = fields.mapping("registration")
        if raw_registration is not None:
            nested = Fields(raw_registration, "body", problems, ("registration",))
            registration = _registration(
                nested, raw_registration, problems, ("body", "registration"), name_required=False
            )
        problems.check()
        if not name:
            return json_response({"status": "ok", "name": None, "runtime_id": None, "runtime": None})
        beat = pools_pb2.PoolServiceHeartbeatRequest(name=name, kind=WORKER_POOL)
        if registration is not None and self._auto_recreate:
            beat.registration.CopyFrom(registration.message)
        answer = await self._registry.Heartbeat(beat, timeout=self._timeout)
        # Only a heartbeat that carried a registration can have re-created its pool.
        recreated = registration if answer.recreated else None
        return json_response(
            {
                "status": "ok" if recreated is None else "recreated",
                "name": name,
                "runtime_id": str(answer.runtime_id),
                "runtime": None if recreated is None else recreated.runtime,
            }
        )

    async def pools(self, request: Request) -> Response:
        """§7.4: worker pools by name. A failed read answers 200 with `error` set and no items."""
        problems = Problems()
        query = problems.query(request)
        runtime = query.text("runtime")
        status = query.text("status")
        problems.check()
        listing = pools_pb2.PoolServiceListRequest(kind=WORKER_POOL)
        set_present(listing, runtime_type=runtime, status=None if status is None else status.lower())
        items: list[dict[str, Any]] = []
        error: str | None = None
        try:
            found = await self._registry.List(listing, timeout=self._timeout)
            items = [_pool_item(entry) for entry in found.entries]
        except MeshError as exc:
            error = _message(exc.detail)
        return json_response(
            {"items": items, "count": len(items), "runtime": runtime, "status": status, "error": error}
        )


def _registration(
    fields: Fields,
    raw: Mapping[str, Any],
    problems: Problems,
    loc: tuple[str, ...],
    *,
    name_required: bool,
) -> _Registration:
    """A §7.1 body: aliases `component_type`/`base_url` win over `kind`/`uri`; `runtime` is a
    string (stored as `{"type": ..., "pid"?, "hostname"?, ...meta}`) or an object (stored as it is).
    """
    # Read in the order of §7.1's fields, so problems are reported in Pydantic's order.
    name = fields.non_blank_text("name") if name_required else fields.text("name") or ""
    fields.text("component_type", "kind")  # type-checked, then forced to worker_pool
    runtime = raw.get("runtime")
    if runtime is not None and not isinstance(runtime, str | dict):
        # Pydantic's report for a `str | dict[str, Any]` field: one error per member.
        problems.add("string_type", [*loc, "runtime", "str"], "Input should be a valid string", runtime)
        problems.add(
            "dict_type", [*loc, "runtime", "dict[str,any]"], "Input should be a valid dictionary", runtime
        )
    uri = fields.text("base_url", "uri")
    status = fields.text("status")
    capacity = (
        None if raw.get("capacity") is None else fields.number("capacity", 0, minimum=0, maximum=INT32_MAX)
    )
    labels = fields.mapping("labels")
    pid = fields.identifier("pid")
    hostname = fields.text("hostname")
    meta = fields.mapping("meta")
    stored: dict[str, Any] | None
    if isinstance(runtime, dict):
        stored = runtime
    else:
        described: dict[str, Any] = {"type": runtime} if isinstance(runtime, str) else {}
        if pid is not None:
            described["pid"] = pid
        if hostname is not None:
            described["hostname"] = hostname
        described.update(meta or {})
        stored = described or None
    message = pools_pb2.PoolRegistration(
        name=name.strip(),
        kind=WORKER_POOL,
        status=(status or "ready").strip().lower(),
        labels_json=b"" if labels is None else dumps(labels),
        runtime_json=b"" if stored is None else dumps(stored),
    )
    set_present(message, uri=uri, capacity=capacity)
    return _Registration(message, runtime)


def _kind(fields: Fields, problems: Problems) -> str:
    kind = fields.text("component_type", "kind")
    if kind is None:
        return WORKER_POOL
    if kind not in KINDS:
        name = "component_type" if fields.has("component_type") else "kind"
        problems.add(
            "literal_error",
            ["body", name],
            f"Input should be {_EXPECTED_KIND}",
            kind,
            {"expected": _EXPECTED_KIND},
        )
    return kind


def _pool_item(entry: pools_pb2.RuntimeEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "runtime": in_order(jsonutil.loads(entry.runtime_json), RUNTIME_KEYS),
        "status": entry.status,
        "capacity": optional(entry, "capacity"),
        "labels": jsonutil.loads(entry.labels_json),
        "heartbeat": timestamp(entry.heartbeat),
        "created_at": timestamp(entry.created_at),
        "updated_at": timestamp(entry.updated_at),
    }


def _message(detail: str | dict[str, Any]) -> str:
    if isinstance(detail, str):
        return detail
    message = detail.get("message")
    return message if isinstance(message, str) else str(detail)
