"""Tracing and metrics interceptors of GrpcHost (data-model.md §12): spans carry execution_id,
the request counter is labelled by method and status code, never by id.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import grpc
import pytest
from noetl.v1 import events_pb2, execution_pb2
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY, generate_latest

from tests.helpers.rpc import failure_of
from tests.helpers.services import Mesh
from tests.helpers.waiting import wait_for

EXECUTION_ID = 612400000000000001


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """Records every span finished in this process while the module runs.

    The global tracer provider can be set only once per process, so an SDK provider that is
    already installed gets one more processor instead.
    """
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


async def server_span(exporter: InMemorySpanExporter, method: str) -> ReadableSpan:
    """The one finished server span of `method` (the server may end it just after answering)."""

    async def finished() -> list[ReadableSpan] | None:
        found = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER and s.name == method]
        return found or None

    (span,) = await wait_for(finished, what=f"a server span of {method}")
    return span


def requests_total(service: str, method: str, code: str) -> float:
    """The counter as the /metrics text exposes it (0 when the series is absent)."""
    text = generate_latest(REGISTRY).decode()
    labels = "".join(
        f'(?=[^}}]*{name}="{re.escape(value)}")'
        for name, value in (("code", code), ("method", method), ("service", service))
    )
    pattern = rf"^noetl_grpc_server_requests_total\{{{labels}[^}}]*\}} (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_a_server_span_carries_the_execution_id_of_the_request(
    mesh: Mesh, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    await mesh.events.ListEvents(events_pb2.ListEventsRequest(execution_id=EXECUTION_ID), timeout=10)

    span = await server_span(spans, "/noetl.v1.EventService/ListEvents")
    assert span.attributes is not None
    assert span.attributes.get("execution_id") == str(EXECUTION_ID)


async def test_a_streaming_server_span_carries_the_execution_id_too(
    mesh: Mesh, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    call = mesh.events.Subscribe(events_pb2.SubscribeRequest(execution_id=EXECUTION_ID), timeout=10)
    await failure_of(call.read())  # unknown execution: the span still ends, with the id on it

    span = await server_span(spans, "/noetl.v1.EventService/Subscribe")
    assert span.attributes is not None
    assert span.attributes.get("execution_id") == str(EXECUTION_ID)


async def test_metrics_count_requests_by_method_and_status_code(mesh: Mesh) -> None:
    ok_before = requests_total("EventService", "ListEvents", "OK")
    await mesh.events.ListEvents(events_pb2.ListEventsRequest(execution_id=EXECUTION_ID), timeout=10)
    assert requests_total("EventService", "ListEvents", "OK") == ok_before + 1

    missing_before = requests_total("ExecutionService", "Get", "NOT_FOUND")
    failure = await failure_of(
        mesh.execution.Get(execution_pb2.GetRequest(execution_id=EXECUTION_ID), timeout=10)
    )
    assert failure.code is grpc.StatusCode.NOT_FOUND
    assert requests_total("ExecutionService", "Get", "NOT_FOUND") == missing_before + 1
    assert str(EXECUTION_ID) not in generate_latest(REGISTRY).decode()
