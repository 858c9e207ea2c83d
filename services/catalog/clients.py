"""Adapters from the catalog's ports to the other services' gRPC APIs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from noetl.v1 import events_pb2, events_pb2_grpc

from kernel.grpc_client import Sharded


class EventHistory:
    """Execution history from the event log: every events shard is asked, the answers joined."""

    def __init__(self, events: Sharded[events_pb2_grpc.EventServiceStub], timeout: float = 30.0) -> None:
        self._events = events
        self._timeout = timeout

    async def used(self, catalog_ids: Sequence[int]) -> set[int]:
        request = events_pb2.CatalogUsageRequest(catalog_ids=catalog_ids)
        answers = await asyncio.gather(
            *(stub.CatalogUsage(request, timeout=self._timeout) for stub in self._events.all())
        )
        return {catalog_id for answer in answers for catalog_id in answer.used_catalog_ids}
