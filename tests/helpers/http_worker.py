"""A worker that speaks HTTP only (dsl.md §16), as workers outside this repository do.

It takes command notifications from JetStream like the reference worker (subject
`noetl.commands.<pool>.>`, kernel/bus.py) and does everything else through the gateway:
registers its pool, heartbeats it (carrying its registration, so a lost entry is re-created),
fetches and claims commands, posts the lifecycle events a worker sends and deregisters at the end.

It runs two tool kinds: `noop` (result `{}`), and `python` whose code is exactly one
`result = <literal>` assignment. Anything else fails the command with `call.error`.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import nats
import orjson
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy


@dataclass
class HttpWorker:
    name: str
    pool: str
    # The command.issued event ids it ran, in order.
    ran: list[int] = field(default_factory=list)
    # Unexpected answers of the gateway; a test asserts there are none.
    failures: list[str] = field(default_factory=list)


class _Unsupported(Exception):
    pass


@asynccontextmanager
async def http_worker(
    gateway_url: str, nats_url: str, *, name: str, pool: str, heartbeat_seconds: float = 0.5
) -> AsyncIterator[HttpWorker]:
    """Registers and consumes `pool` until the block ends, then deregisters (DELETE)."""
    worker = HttpWorker(name, pool)
    registration = {
        "name": name,
        "runtime": "http",
        "pid": 0,
        "hostname": "http-test-worker",
        "capacity": 1,
        "labels": {"pools": [pool]},
    }
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    subject = f"noetl.commands.{pool}.>"
    durable = f"http_worker_{pool}"
    subscription = await js.pull_subscribe(
        subject,
        durable=durable,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.NEW, ack_wait=60),
    )
    try:
        async with httpx.AsyncClient(base_url=gateway_url, timeout=30.0) as http:
            registered = await http.post("/api/worker/pool/register", json=registration)
            assert registered.status_code == 200, registered.text
            stop = asyncio.Event()
            async with asyncio.TaskGroup() as group:
                group.create_task(_heartbeats(http, worker, registration, heartbeat_seconds, stop))
                group.create_task(_consume(http, worker, subscription, stop))
                try:
                    yield worker
                finally:
                    stop.set()
            gone = await http.request("DELETE", "/api/worker/pool/deregister", json={"name": name})
            assert gone.status_code == 200, gone.text
    finally:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
        with contextlib.suppress(Exception):
            await js.delete_consumer(await js.find_stream_name_by_subject(subject), durable)
        await nc.drain()


async def _heartbeats(
    http: httpx.AsyncClient,
    worker: HttpWorker,
    registration: dict[str, Any],
    every: float,
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        beat = await http.post(
            "/api/worker/pool/heartbeat", json={"name": worker.name, "registration": registration}
        )
        if beat.status_code != 200:
            worker.failures.append(f"heartbeat -> {beat.status_code}: {beat.text}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)


async def _consume(
    http: httpx.AsyncClient,
    worker: HttpWorker,
    subscription: JetStreamContext.PullSubscription,
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        try:
            messages = await subscription.fetch(1, timeout=0.5)
        except NatsTimeout:
            continue
        for message in messages:
            await _handle(http, worker, message)


async def _handle(http: httpx.AsyncClient, worker: HttpWorker, message: Msg) -> None:
    note = orjson.loads(message.data)
    event_id = int(note["event_id"])
    # GET first, as workers that inspect a command before taking it do; the claim answers it again.
    looked_up = await http.get(f"/api/commands/{event_id}")
    if looked_up.status_code != 200:
        worker.failures.append(f"GET command {event_id} -> {looked_up.status_code}: {looked_up.text}")
    claim = await http.post(f"/api/commands/{event_id}/claim", json={"worker_id": worker.name})
    if claim.status_code in (404, 409):
        await message.ack()
        return
    if claim.status_code != 200:
        worker.failures.append(f"claim {event_id} -> {claim.status_code}: {claim.text}")
        await message.nak(delay=1)
        return
    await message.ack()
    command = claim.json()
    worker.ran.append(event_id)
    step: str = command["node_name"]
    command_id: int = command["meta"]["command_id"]
    execution_id: int = command["execution_id"]

    async def post(event_type: str, payload: dict[str, Any]) -> None:
        response = await http.post(
            "/api/events",
            json={
                "execution_id": str(execution_id),
                "step": step,
                "event_type": event_type,
                "payload": payload,
                "meta": {"command_id": command_id},
                "worker_id": worker.name,
            },
        )
        if response.status_code != 200:
            worker.failures.append(f"{event_type} of {step} -> {response.status_code}: {response.text}")

    await post("command.started", {"command_id": command_id})
    started = time.perf_counter()
    try:
        data = _run(command["action"], command["context"]["tool_config"])
    except _Unsupported as exc:
        error = str(exc)
        await post("call.error", {"command_id": command_id, "call_index": 0, "error": error})
        await post("command.failed", {"command_id": command_id, "error": error})
        return
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    result = {"status": "success", "context": {"data": data, "status": "success", "duration_ms": duration_ms}}
    await post("call.done", {"command_id": command_id, "call_index": 0, "result": result})
    await post("step.exit", {"command_id": command_id, "status": "COMPLETED", "result": result})
    await post("command.completed", {"command_id": command_id, "status": "success"})


def _run(kind: str, tool_config: dict[str, Any]) -> Any:
    """Raises _Unsupported for a kind or code this worker cannot run."""
    if kind == "noop":
        return {}
    if kind == "python":
        code = str(tool_config.get("code", ""))
        body = ast.parse(code).body
        if (
            len(body) == 1
            and isinstance(body[0], ast.Assign)
            and [getattr(t, "id", None) for t in body[0].targets] == ["result"]
        ):
            try:
                return ast.literal_eval(body[0].value)
            except ValueError:
                pass
        raise _Unsupported(f"the HTTP test worker runs only `result = <literal>` python code, not {code!r}")
    raise _Unsupported(f"the HTTP test worker cannot run tool kind {kind!r}")
