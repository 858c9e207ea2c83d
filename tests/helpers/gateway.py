"""The gateway app in the test's own process: ASGI in memory, real gRPC clients to the services
its settings name. For tests of the HTTP layer that need no gateway process of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from gateway_http.app import create_app
from gateway_http.clients import GatewayClients
from gateway_http.settings import GatewaySettings


@asynccontextmanager
async def in_process_gateway(
    settings: GatewaySettings, *, http_timeout: float = 5.0
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app built from `settings`; its gRPC channels close with the block."""
    clients = GatewayClients.connect(settings)
    try:
        transport = httpx.ASGITransport(app=create_app(clients, settings))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway", timeout=http_timeout
        ) as client:
            yield client
    finally:
        await clients.close()
