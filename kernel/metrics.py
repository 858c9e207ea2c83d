"""Prometheus metrics shared by every process (data-model.md §12.1).

Each service exposes its registry at `/metrics` on `NOETL_METRICS_PORT`; the gateway serves
its own at `GET /metrics`. Labels are low-cardinality enums only.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import grpc
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from kernel.handlers import responses, rewrap

BUILD_VERSION = "0.1.0"
INGEST_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

BUILD_INFO = Gauge("noetl_server_build_info", "Build information", ["version"])
BUILD_INFO.labels(BUILD_VERSION).set(1)

GRPC_REQUESTS = Counter(
    "noetl_grpc_server_requests_total", "gRPC requests handled", ["service", "method", "code"]
)
GRPC_DURATION = Histogram(
    "noetl_grpc_server_duration_seconds",
    "gRPC handler latency",
    ["service", "method"],
    buckets=INGEST_BUCKETS,
)


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Starts the /metrics endpoint in a daemon thread; port 0 disables it.

    Raises:
        OSError: the address cannot be bound; unlike the library's, the message names it.
    """
    if port:
        try:
            start_http_server(port, addr=host)
        except OSError as exc:
            raise OSError(
                exc.errno, f"the metrics endpoint cannot bind {host}:{port}: {exc.strerror}"
            ) from exc


def precreate_grpc_series(service_name: str, methods: Iterable[str]) -> None:
    for method in methods:
        GRPC_REQUESTS.labels(service_name, method, "OK")
        GRPC_DURATION.labels(service_name, method)


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times handlers by method and status code (a stream is timed to its end)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        service, _, method = handler_call_details.method.strip("/").rpartition("/")
        service = service.rsplit(".", 1)[-1]
        # The labelled children are looked up once per method, not on every call.
        succeeded = GRPC_REQUESTS.labels(service, method, "OK")
        duration = GRPC_DURATION.labels(service, method)

        def record(started: float, code: str) -> None:
            (succeeded if code == "OK" else GRPC_REQUESTS.labels(service, method, code)).inc()
            duration.observe(time.perf_counter() - started)

        def timed(behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started = time.perf_counter()
                try:
                    response = await behavior(request, context)
                except BaseException:
                    code = context.code()
                    record(started, code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN")
                    raise
                record(started, "OK")
                return response

            return run

        def timed_stream(behavior: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
            async def run(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                started = time.perf_counter()
                try:
                    async for item in responses(behavior, request, context):
                        yield item
                except BaseException:
                    code = context.code()
                    record(started, code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN")
                    raise
                record(started, "OK")

            return run

        return rewrap(handler, single=timed, streaming=timed_stream)
