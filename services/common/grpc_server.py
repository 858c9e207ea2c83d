"""One way to host gRPC servicers: interceptors, health, metrics and a graceful stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.common import metrics, telemetry
from services.common.rpc_errors import ErrorInterceptor

log = logging.getLogger(__name__)

Registrar = Callable[[grpc.aio.Server], None]


class GrpcHost:
    """Lifecycle: `start()`, `wait()`, idempotent `stop()`; SIGTERM stops intake, then drains."""

    def __init__(self, name: str, listen: str, registrars: list[Registrar], *, grace: float = 10.0) -> None:
        self.name = name
        self._listen = listen
        self._grace = grace
        self._server = grpc.aio.server(
            interceptors=[*telemetry.server_interceptors(), metrics.MetricsInterceptor(), ErrorInterceptor()],
            options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 64 * 1024 * 1024)],
        )
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        for register in registrars:
            register(self._server)
        self.port = 0
        self._stopped = asyncio.Event()
        self._stopping = False

    async def start(self) -> int:
        """Binds and serves; returns the bound port (useful with port 0).

        Raises:
            RuntimeError: the address cannot be bound.
        """
        self.port = self._server.add_insecure_port(self._listen)
        if self.port == 0:
            raise RuntimeError(f"{self.name}: cannot bind gRPC on {self._listen}")
        await self._server.start()
        await self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        log.info("%s serving gRPC on port %s", self.name, self.port)
        return self.port

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(self.stop()))

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        await self._health.enter_graceful_shutdown()
        await self._server.stop(self._grace)
        self._stopped.set()

    async def wait(self) -> None:
        await self._stopped.wait()
