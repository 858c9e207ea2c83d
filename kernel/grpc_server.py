"""One way to host gRPC servicers: interceptors, health, metrics and a graceful stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from kernel import metrics, telemetry
from kernel.grpc_client import MAX_MESSAGE_BYTES
from kernel.health import WritePathWatch
from kernel.lifecycle import Periodic
from kernel.mesh_guard import AuthInterceptor, ServerAuth
from kernel.rpc_errors import ErrorInterceptor

log = logging.getLogger(__name__)

Registrar = Callable[[grpc.aio.Server], None]
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


class PerMethod(grpc.aio.ServerInterceptor):
    """Runs a chain of interceptors once per method and serves later calls the handler it built.

    The chain (tracing, execution id, metrics, error mapping) wraps a method's behaviour in
    closures that depend on the method alone, never on the call: building them on every call
    was pure per-call overhead. Every call still runs through every wrapper.
    """

    def __init__(self, interceptors: Sequence[grpc.aio.ServerInterceptor]) -> None:
        self._interceptors = list(interceptors)
        self._built: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method
        built = self._built.get(method)
        if built is None:
            built = await self._through(0, continuation, handler_call_details)
            if built is not None:  # an unknown method is not remembered: callers choose its name
                self._built[method] = built
        return built

    async def _through(
        self, index: int, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        if index == len(self._interceptors):
            return await continuation(details)
        return await self._interceptors[index].intercept_service(
            lambda inner: self._through(index + 1, continuation, inner), details
        )


# Load shedding: past this many calls in progress a service refuses new ones (RESOURCE_EXHAUSTED,
# which callers and the gateway treat as 503 + Retry-After) rather than queueing without bound.
# Streams count too (SSE subscriptions, worker StreamEmit), hence the generous figure.
MAX_CONCURRENT_RPCS = 4096


class GrpcHost:
    """Lifecycle: `start()`, `wait()`, idempotent `stop()`; SIGTERM stops intake, then drains.

    `auth` says who may call (kernel/mesh_guard.py); it is required so that no server
    is built open by omission: an open one is asked for with `ServerAuth.off()`.
    """

    def __init__(
        self,
        name: str,
        listen: str,
        registrars: list[Registrar],
        *,
        auth: ServerAuth,
        grace: float = 10.0,
        max_concurrent_rpcs: int = MAX_CONCURRENT_RPCS,
    ) -> None:
        self.name = name
        self._listen = listen
        self._grace = grace
        self._auth = auth
        # Refused calls are traced and counted (auth runs after telemetry and metrics).
        guard = [AuthInterceptor(auth)] if auth.enabled else []
        self._server = grpc.aio.server(
            interceptors=[
                PerMethod(
                    [
                        *telemetry.server_interceptors(),
                        metrics.MetricsInterceptor(),
                        *guard,
                        ErrorInterceptor(),
                    ]
                )
            ],
            options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)],
            maximum_concurrent_rpcs=max_concurrent_rpcs,
        )
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        for register in registrars:
            register(self._server)
        self._watches = [r for r in registrars if isinstance(r, WritePathWatch)]
        self._watching: list[Periodic] = []
        self.port = 0
        self._stopped = asyncio.Event()
        self._stopping = False

    async def start(self) -> int:
        """Binds and serves; returns the bound port (useful with port 0).

        Raises:
            RuntimeError: the address cannot be bound.
        """
        self.port = self._auth.bind(self._server, self._listen)
        if self.port == 0:
            raise RuntimeError(f"{self.name}: cannot bind gRPC on {self._listen}")
        await self._server.start()
        await self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        self._watching = [w.watching(self._health) for w in self._watches]
        for watch in self._watching:
            await watch.start()
        log.info("%s serving gRPC on port %s (mesh auth: %s)", self.name, self.port, self._auth.settings.mode)
        return self.port

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(self.stop()))

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        for watch in self._watching:
            watch.stop()
        await self._health.enter_graceful_shutdown()
        await self._server.stop(self._grace)
        # A probe still under way ends within its timeout, most likely during the drain above.
        for watch in self._watching:
            await watch.wait()
        self._stopped.set()

    async def wait(self) -> None:
        await self._stopped.wait()
