"""(e) Gateway translation overhead: the same call through HTTP and directly over gRPC.

Three calls, each made one at a time (no concurrency, so the figures are latency, not queueing):
- `POST /api/catalog/resource {path}` ↔ `CatalogService.GetResource` (a read served from a cache);
- `GET /api/executions/{id}/status` ↔ `ExecutionService.Status` (a read of cached execution state);
- `POST /api/events` ↔ `EventService.Emit` (a write: one `call.done` with a fresh command id into a
  parked execution, so no orchestration pass follows and idempotency never collapses it).

The direct gRPC client is the same `grpc.aio` stub the gateway uses; the HTTP client is the raw
keep-alive client of `bench/http.py`. Rounds alternate HTTP and gRPC batches so that drift in the
machine's load hits both sides alike. "Added" is the HTTP percentile minus the gRPC percentile.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson
from noetl.v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    events_pb2,
    events_pb2_grpc,
    execution_pb2,
    execution_pb2_grpc,
)

from bench.http import RawPoster
from bench.ingest import FAKE_COMMAND_BASE, PARKED_POOL, parked_targets
from bench.playbooks import SetupError
from bench.stats import percentile
from bench.target import Target
from kernel.mesh_policy import GATEWAY

ROUNDS = 10


@dataclass
class Comparison:
    name: str
    http_ms: list[float] = field(default_factory=list)
    grpc_ms: list[float] = field(default_factory=list)

    def added(self, q: float) -> float:
        return percentile(self.http_ms, q) - percentile(self.grpc_ms, q)


Call = Callable[[], Awaitable[None]]


async def _timed(call: Call, count: int, into: list[float]) -> None:
    for _ in range(count):
        began = time.perf_counter()
        await call()
        into.append((time.perf_counter() - began) * 1000.0)


async def _compare(name: str, http_call: Call, grpc_call: Call, calls: int, warmup: int) -> Comparison:
    for _ in range(warmup):
        await http_call()
        await grpc_call()
    found = Comparison(name)
    per_round = max(1, calls // ROUNDS)
    for _ in range(ROUNDS):
        await _timed(http_call, per_round, found.http_ms)
        await _timed(grpc_call, per_round, found.grpc_ms)
    return found


def _expect_ok(status: int, raw: bytes, what: str) -> None:
    if status != 200:
        raise SetupError(f"{what} -> {status}: {raw[:200]!r}")


async def run_gateway(target: Target, *, calls: int, warmup: int) -> list[Comparison]:
    if target.execution_addr is None or target.events_addr is None or target.catalog_addr is None:
        raise SetupError("the gateway benchmark needs the mesh's run dir (--run-dir) to reach the services")
    http = RawPoster(target.gateway_url)
    # Compared with the gateway's own calls, so made as the gateway.
    channels = [
        target.channel(addr, GATEWAY)
        for addr in (target.catalog_addr, target.execution_addr, target.events_addr)
    ]
    catalog = catalog_pb2_grpc.CatalogServiceStub(channels[0])
    executions = execution_pb2_grpc.ExecutionServiceStub(channels[1])
    events = events_pb2_grpc.EventServiceStub(channels[2])
    try:
        ((execution_id, _command),) = await parked_targets(http, 1)
        eid = int(execution_id)
        fake_ids = itertools.count(FAKE_COMMAND_BASE + (1 << 40))
        resource_body = orjson.dumps({"path": "bench/ingest_target"})

        async def http_resource() -> None:
            _expect_ok(*await http.post("/api/catalog/resource", resource_body), "catalog/resource")

        async def grpc_resource() -> None:
            await catalog.GetResource(catalog_pb2.GetResourceRequest(path="bench/ingest_target"), timeout=10)

        status_path = f"/api/executions/{execution_id}/status"

        async def http_status() -> None:
            _expect_ok(*await http.get(status_path), "status")

        async def grpc_status() -> None:
            await executions.Status(execution_pb2.StatusRequest(execution_id=eid), timeout=10)

        def payload(command_id: int) -> dict[str, object]:
            envelope = {
                "status": "success",
                "context": {"data": {"n": command_id % 1000}, "status": "success"},
            }
            return {"command_id": command_id, "call_index": 0, "result": envelope}

        async def http_emit() -> None:
            command_id = next(fake_ids)
            body = orjson.dumps(
                {"execution_id": execution_id, "step": "start", "event_type": "call.done",
                 "payload": payload(command_id), "meta": {"command_id": command_id}, "worker_id": "bench-gw"}
            )  # fmt: skip
            _expect_ok(*await http.post("/api/events", body), "events")

        async def grpc_emit() -> None:
            command_id = next(fake_ids)
            event = events_pb2.WorkerEvent(
                execution_id=eid,
                step="start",
                event_type="call.done",
                payload_json=orjson.dumps(payload(command_id)),
                meta_json=orjson.dumps({"command_id": command_id}),
                worker_id="bench-gw",
                actionable=True,
                informative=True,
            )
            await events.Emit(events_pb2.EmitRequest(event=event), timeout=10)

        return [
            await _compare("catalog resource", http_resource, grpc_resource, calls, warmup),
            await _compare("execution status", http_status, grpc_status, calls, warmup),
            await _compare("event ingest (1 event)", http_emit, grpc_emit, calls, warmup),
        ]
    finally:
        await http.close()
        for channel in channels:
            await channel.close()


def rows(found: list[Comparison]) -> list[list[str]]:
    out = []
    for c in found:
        name = f"gateway: {c.name}"
        out += [
            [
                name,
                "HTTP p50 / p99 ms",
                f"{percentile(c.http_ms, 50):.2f} / {percentile(c.http_ms, 99):.2f}",
                "",
            ],
            [
                name,
                "gRPC p50 / p99 ms",
                f"{percentile(c.grpc_ms, 50):.2f} / {percentile(c.grpc_ms, 99):.2f}",
                "",
            ],
            [name, "added p50 / p99 ms", f"{c.added(50):.2f} / {c.added(99):.2f}", "target ≤ 2 ms at p50"],
        ]
    return out


def describe(found: list[Comparison]) -> list[str]:
    calls = ", ".join(f"{c.name}: {len(c.http_ms)} + {len(c.grpc_ms)}" for c in found)
    return [
        f"gateway overhead: sequential calls (HTTP + gRPC) — {calls}; rounds alternate the two sides.",
        f"The execution posted into is parked (bench/ingest_target on pool {PARKED_POOL!r}, never claimed).",
    ]
