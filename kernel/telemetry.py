"""Tracing: OpenTelemetry gRPC instrumentation on every server and client of a tracing mesh.

`execution_id` is a span attribute (never a metric label). Exporting is configured with the
standard `OTEL_TRACES_EXPORTER` variable: `none` (default) or `console`; an OTLP exporter can
be added by installing its package and pointing the SDK at a collector. With `none` and no
`OTEL_TRACES_SAMPLER`, a process records nothing and installs no tracing interceptor.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from kernel.handlers import Behavior, rewrap


def setup_tracing(service_name: str) -> None:
    """Installs a tracer provider once per process (the API itself refuses a second one).

    With no exporter configured, spans are not sampled unless `OTEL_TRACES_SAMPLER` says
    otherwise: the instrumentation still propagates trace context through every call, but
    nobody pays for recording spans that would be thrown away.
    """
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
    sampler = None if exporter != "none" or os.environ.get("OTEL_TRACES_SAMPLER") else ALWAYS_OFF
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"noetl-{service_name}"}), sampler=sampler
    )
    if exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)


def tag_execution(execution_id: int) -> None:
    """Marks the current span with the execution it works on."""
    if execution_id:
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("execution_id", str(execution_id))


def tag_executions(execution_ids: Iterable[int]) -> None:
    """Marks the current span with every execution a call for several of them works on."""
    span = trace.get_current_span()
    if span.is_recording():
        tagged = sorted({str(execution_id) for execution_id in execution_ids if execution_id})
        if tagged:
            span.set_attribute("execution_id", tagged)


class ExecutionIdInterceptor(grpc.aio.ServerInterceptor):
    """Copies `execution_id` from single-message requests onto the RPC's span."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        def tagged(behavior: Behavior) -> Behavior:
            def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
                # Client-streaming requests are iterators: those handlers tag per message.
                tag_execution(getattr(request, "execution_id", 0))
                return behavior(request, context)

            return run

        return rewrap(await continuation(handler_call_details), single=tagged, streaming=tagged)


def recording() -> bool:
    """Whether this process may record spans: false once `setup_tracing` has installed the
    never-sampling provider (no exporter, no sampler asked for)."""
    provider = trace.get_tracer_provider()
    return not (isinstance(provider, TracerProvider) and provider.sampler is ALWAYS_OFF)


# A process that records no span gets no tracing interceptors: around every call they would build
# and end a span nobody keeps, a quarter to a third of a unary call's CPU (docs/decisions.md).
# Tracing is therefore switched on per mesh, every service alike: a recording service behind one
# that records nothing starts a trace of its own.
def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    return [aio_server_interceptor(), ExecutionIdInterceptor()] if recording() else []


def client_interceptors() -> list[Any]:
    return list(aio_client_interceptors()) if recording() else []
