"""`python -m worker`: the reference worker."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from contextlib import AsyncExitStack

import uvloop
from noetl.v1 import events_pb2_grpc, execution_pb2_grpc, pools_pb2_grpc, results_pb2_grpc, secrets_pb2_grpc

from kernel import bus, heap, telemetry
from kernel.config import ConfigError
from kernel.grpc_client import ClientAuth, Sharded, open_channel
from kernel.runner import configure_logging
from worker.consumer import Consumer
from worker.credentials import SecretsClient
from worker.environment import scrub
from worker.executor import Executor
from worker.registration import PoolMembership, worker_registration
from worker.results import ResultOffload
from worker.settings import Settings
from worker.tools.http import HttpTool
from worker.tools.python_runner import PythonRunner
from worker.tools.registry import Mesh, build_tools


async def serve(settings: Settings, mesh: ClientAuth) -> int:
    """Each resource is closed by the stack as soon as it is open: a failed start closes, in
    reverse order, what was already open; a stop drains the consumer first, then leaves the pool."""
    async with AsyncExitStack() as stack:
        nc = await bus.connect(settings.bus, settings.worker_id)
        stack.push_async_callback(nc.drain)
        js = nc.jetstream()
        await bus.ensure_streams(js, settings.bus)
        commands = Sharded(settings.execution_addrs, execution_pb2_grpc.CommandServiceStub, mesh)
        stack.push_async_callback(commands.close)
        events = Sharded(settings.events_addrs, events_pb2_grpc.EventServiceStub, mesh)
        stack.push_async_callback(events.close)
        executions = Sharded(settings.execution_addrs, execution_pb2_grpc.ExecutionServiceStub, mesh)
        stack.push_async_callback(executions.close)
        results = Sharded(settings.execution_addrs, results_pb2_grpc.ResultServiceStub, mesh)
        stack.push_async_callback(results.close)
        # The pool registry is cluster-wide, served by shard 0.
        registry_channel = open_channel(settings.execution_addrs[0], mesh)
        stack.push_async_callback(registry_channel.close)
        secrets_channel = open_channel(settings.secrets_addr, mesh) if settings.secrets_addr else None
        if secrets_channel is not None:
            stack.push_async_callback(secrets_channel.close)
        secrets = SecretsClient(
            secrets_pb2_grpc.SecretsServiceStub(secrets_channel) if secrets_channel is not None else None,
            settings.worker_id,
        )
        http = HttpTool()
        stack.push_async_callback(http.close)
        offload = ResultOffload(results, settings.inline_result_bytes)
        runner = await stack.enter_async_context(PythonRunner(processes=settings.python_processes))
        executor = Executor(
            worker_id=settings.worker_id,
            commands=commands,
            events=events,
            tools=build_tools(runner, Mesh(executions, events, offload), http),
            default_timeout=settings.default_timeout,
            heartbeat_seconds=settings.heartbeat_seconds,
            server_url=settings.server_url,
            executions=executions,
            cancel_check_seconds=settings.cancel_check_seconds,
            secrets=secrets,
            max_result_bytes=settings.max_result_bytes,
            offload=offload,
        )
        consumer = Consumer(
            js,
            executor,
            stream=settings.bus.command_stream,
            consumer=settings.consumer,
            pools=settings.pools,
            concurrency=settings.concurrency,
            ack_wait=max(300.0, settings.default_timeout + 30),
            grace=settings.shutdown_grace_seconds,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, consumer.stop)
        logging.getLogger("worker").info("worker %s starting", settings.worker_id)
        # Left after the consumer has drained: a late heartbeat would mark the pool ready again.
        await stack.enter_async_context(
            PoolMembership(
                pools_pb2_grpc.PoolServiceStub(registry_channel),
                worker_registration(settings.worker_id, settings.pools, settings.concurrency),
                settings.pool_heartbeat_seconds,
            )
        )
        await stack.enter_async_context(consumer)
        heap.settle()
        await consumer.wait()
    return 0


def main() -> int:
    configure_logging("worker")
    try:
        settings = Settings.load()
    except ConfigError as exc:
        logging.getLogger("worker").error("%s", exc)
        return 2
    # The token is read now and kept; then the worker's credentials leave its environment, so the
    # python and shell steps it starts inherit neither them nor their paths (docs/security.md).
    mesh = ClientAuth(settings.mesh, token_once=True)
    removed = scrub(os.environ)
    logging.getLogger("worker").info("kept from user code's environment: %s", ", ".join(removed) or "nothing")
    telemetry.setup_tracing("worker")
    code: int = uvloop.run(serve(settings, mesh))
    return code


if __name__ == "__main__":
    sys.exit(main())
