"""(h) Worker event stream: `EventService/StreamEmit` throughput and commit latency.

StreamEmit is client-streaming: a worker opens one call per command, sends messages (each one
transaction of its events, group-committed with concurrent appends), and gets a single answer
after the last message's transaction has committed. There is no per-message acknowledgement, so
a message's commit is observable only through the call's answer: a call of one message times
exactly send → commit → ack; a call of M messages (sent at once, pipelined) bounds each of its
messages' commit latency from above.

Setup: as a worker would, with a mesh token of its own (`worker:bench-emit`, issued in the run
dir like an added worker's): `bench/ingest_target` is started once per stream on an execution
pool no worker consumes, and the bench claims each `start` command (`Claim`, start=True). The
events service accepts a worker identity's events only for commands it claimed, and dedupes a
command's lifecycle events, so the load is `command.heartbeat`: stored every time, projected onto
the command row, never advancing the execution.

Load: each of K streams repeats StreamEmit calls of M messages x B heartbeats for its own
command, the next call as soon as the previous one is answered, for `duration` seconds after
`warmup`. Afterwards the parked executions are completed as bench/ingest.py does.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

import grpc
from noetl.v1 import events_pb2, events_pb2_grpc, execution_pb2, execution_pb2_grpc

from bench.cpu import CpuMeter, CpuReport, share_rows
from bench.http import RawPoster
from bench.ingest import PARKED_POOL, close_parked, event_costs, issued_event
from bench.playbooks import INGEST_TARGET, SetupError, execute, register
from bench.stats import percentile
from bench.target import Snapshot, Target
from kernel import jsonutil
from kernel.mesh_policy import WORKER
from noetl_mesh.credentials import AUTH_DIR, add_worker

WORKER_ID = "bench-emit"
MAX_CALLS_PER_STREAM = 1_000_000
CALL_TIMEOUT = 30.0
# Servers pick a newly issued token up within about a second.
TOKEN_WAIT = 10.0


@dataclass
class EmitResult:
    streams: int
    messages: int  # per call
    batch: int  # events per message
    window: float
    events: int = 0  # committed within the window
    calls: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # per call: first send → answer
    errors: Counter[str] = field(default_factory=Counter)
    cpu: CpuReport | None = None
    append_txn: tuple[float, int] | None = None  # mean seconds of the events service's append
    cost: list[str] = field(default_factory=list)
    close_problems: list[str] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return self.events / self.window if self.window > 0 else 0.0

    @property
    def messages_per_s(self) -> float:
        return self.calls * self.messages / self.window if self.window > 0 else 0.0

    def pct(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


def requests(
    execution_id: int, command_id: int, messages: int, batch: int
) -> list[events_pb2.StreamEmitRequest]:
    """One call's messages: `messages` of `batch` heartbeats each, for one claimed command (what
    the worker's `_EventStream` sends while a tool runs)."""
    event = events_pb2.WorkerEvent(
        execution_id=execution_id,
        step="start",
        event_type="command.heartbeat",
        payload_json=jsonutil.dumps({"command_id": command_id}),
        meta_json=jsonutil.dumps({"command_id": command_id}),
        worker_id=WORKER_ID,
        actionable=True,
        informative=True,
    )
    return [events_pb2.StreamEmitRequest(events=[event] * batch) for _ in range(messages)]


def _error(exc: grpc.aio.AioRpcError) -> str:
    return f"{exc.code().name}: {(exc.details() or '')[:120]}"


async def _claim(stub: execution_pb2_grpc.CommandServiceStub, execution_id: str, event_id: int) -> int:
    """The command id, once claimed as `WORKER_ID` (retried while the new token is not yet known)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TOKEN_WAIT
    request = execution_pb2.ClaimRequest(
        event_id=event_id, execution_id=int(execution_id), worker_id=WORKER_ID, start=True
    )
    while True:
        try:
            response = await stub.Claim(request, timeout=30)
            return int(response.command.command_id)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAUTHENTICATED or loop.time() > deadline:
                raise SetupError(f"claim of execution {execution_id}'s start: {_error(exc)}") from exc
            await asyncio.sleep(0.2)


async def _parked_claims(target: Target, count: int) -> list[tuple[str, int]]:
    """(execution id, claimed start command id) of `count` parked executions."""
    assert target.execution_addr is not None
    poster = RawPoster(target.gateway_url)
    channel = target.channel(target.execution_addr, f"{WORKER}@{WORKER_ID}")
    try:
        await register(poster, INGEST_TARGET)
        stub = execution_pb2_grpc.CommandServiceStub(channel)
        claimed = []
        for _ in range(count):
            execution_id = await execute(poster, "bench/ingest_target", execution_pool=PARKED_POOL)
            event_id = await issued_event(poster, execution_id, "start")
            claimed.append((execution_id, await _claim(stub, execution_id, event_id)))
        return claimed
    finally:
        await channel.close()
        await poster.close()


async def run_emit(
    target: Target, *, streams: int, messages: int, batch: int, duration: float, warmup: float
) -> EmitResult:
    if target.events_addr is None or target.execution_addr is None or target.run_dir is None:
        raise SystemExit("emit needs one shard's events and execution addresses and the mesh's run dir")
    # On a running mesh every run adds a line to its tokens file and replaces this token file.
    add_worker(target.run_dir / AUTH_DIR, WORKER_ID)
    parked = await _parked_claims(target, streams)

    result = EmitResult(streams=streams, messages=messages, batch=batch, window=duration)
    # One channel, as one worker process runs all its commands' streams over one.
    channel = target.channel(target.events_addr, f"{WORKER}@{WORKER_ID}")
    stub = events_pb2_grpc.EventServiceStub(channel)
    per_call = messages * batch
    loop = asyncio.get_running_loop()
    t_measure = loop.time() + warmup
    t_end = t_measure + duration

    async def stream(index: int) -> None:
        execution_id, command_id = parked[index]
        call = requests(int(execution_id), command_id, messages, batch)
        for _ in range(MAX_CALLS_PER_STREAM):
            began = loop.time()
            if began >= t_end:
                return
            try:
                answer = await stub.StreamEmit(iter(call), timeout=CALL_TIMEOUT)
                stored = len(answer.event_ids)
                error = None if stored == per_call else f"{stored} event ids for {per_call} events"
            except grpc.aio.AioRpcError as exc:
                error = _error(exc)
                await asyncio.sleep(0.05)  # do not spin on a refusing server
            done = loop.time()
            if began >= t_measure:
                if error is None:
                    result.latencies_ms.append((done - began) * 1000.0)
                else:
                    result.errors[error] += 1
            if t_measure <= done <= t_end and error is None:
                result.calls += 1
                result.events += per_call

    meter = CpuMeter(target.cpu_roots)
    try:
        tasks = [asyncio.create_task(stream(i)) for i in range(streams)]
        await asyncio.sleep(max(0.0, t_measure - loop.time()))
        before = await Snapshot.take(target)
        meter.start()
        await asyncio.sleep(max(0.0, t_end - loop.time()))
        result.cpu = meter.stop()
        after = await Snapshot.take(target)
        # Bounded: a call in flight at the deadline ends within its timeout.
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=CALL_TIMEOUT + 10)
    finally:
        await channel.close()
    result.append_txn, result.cost = event_costs(
        before, after, result.events, 'event_type="command.heartbeat"'
    )
    result.close_problems = await close_parked(target, parked)
    return result


def rows(result: EmitResult) -> list[list[str]]:
    name = f"StreamEmit ({result.streams} streams, {result.messages}x{result.batch} per call)"
    return [
        [name, "events/s committed", f"{result.events_per_s:.0f}", ""],
        [name, "messages (transactions)/s", f"{result.messages_per_s:.0f}", ""],
        [name, "call p50 / p95 ms", f"{result.pct(50):.1f} / {result.pct(95):.1f}", ""],
        [name, "call p99 ms", f"{result.pct(99):.1f}", ""],
        [name, "errors", str(sum(result.errors.values())), ""],
        *share_rows(name, result.cpu),
    ]


def describe(result: EmitResult) -> list[str]:
    latency = (
        "send → commit → ack" if result.messages == 1 else "first send → ack of the last of its messages"
    )
    lines = [
        f"emit: {result.streams} StreamEmit streams as worker {WORKER_ID!r}, one claimed command each; "
        f"calls of {result.messages} message(s) x {result.batch} command.heartbeat event(s); "
        f"{result.window:.0f}s window; call latency = {latency}",
        f"  {result.events_per_s:.0f} events/s  {result.messages_per_s:.0f} messages/s  "
        f"{result.calls} calls  p50 {result.pct(50):.1f} ms  p95 {result.pct(95):.1f} ms  "
        f"p99 {result.pct(99):.1f} ms  max {max(result.latencies_ms, default=float('nan')):.1f} ms  "
        f"errors {sum(result.errors.values())}",
    ]
    for message, count in result.errors.most_common(5):
        lines.append(f"  error x{count}: {message}")
    if result.append_txn is not None:
        lines.append(
            f"  events service append (queue + group commit), per event: "
            f"mean {result.append_txn[0] * 1000:.1f} ms"
        )
    lines += ["  " + line for line in result.cost]
    for problem in result.close_problems[:3]:
        lines.append(f"  note: closing a parked execution: {problem}")
    if result.cpu is not None:
        lines += ["  " + line for line in result.cpu.lines()]
        if result.events:
            lines.append(
                f"  client CPU per event {1e6 * result.cpu.bench / result.events:.0f} us, "
                f"mesh CPU per event {1e3 * result.cpu.mesh_total / result.events:.3f} ms"
            )
    return lines
