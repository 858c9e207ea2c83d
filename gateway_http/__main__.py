"""`python -m gateway_http`: serve the HTTP API with uvicorn (uvloop + httptools) until SIGTERM/SIGINT.

`NOETL_METRICS_PORT`, which the mesh launcher passes to every process, is not used: the
gateway serves its metrics on its own port at `GET /metrics`.
"""

from __future__ import annotations

import logging
import signal
import ssl
import sys
from contextlib import AsyncExitStack
from types import FrameType

import uvicorn
import uvloop

from gateway_http.app import create_app
from gateway_http.clients import GatewayClients
from gateway_http.settings import GatewaySettings
from kernel import heap, telemetry
from kernel.config import ConfigError
from kernel.runner import configure_logging

NAME = "gateway"


def _already_handled(signum: int, frame: FrameType | None) -> None:
    """uvicorn stops on SIGTERM/SIGINT, drains, then raises the same signal again on its way out.

    With the default handlers that second delivery would kill the process before the channels
    close; by then the signal has been acted on, so it is ignored here.
    """


async def serve(settings: GatewaySettings) -> None:
    """Channels are opened inside the loop that uses them and closed after the server drained."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _already_handled)
    async with AsyncExitStack() as stack:
        clients = GatewayClients.connect(settings)
        stack.push_async_callback(clients.close)
        config = uvicorn.Config(
            create_app(clients, settings),
            host=settings.host,
            port=settings.port,
            http="httptools",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=int(settings.drain_seconds),
            ssl_certfile=settings.tls_cert or None,
            ssl_keyfile=settings.tls_key or None,
            ssl_ca_certs=settings.tls_client_ca or None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if settings.tls_client_ca else ssl.CERT_NONE,
        )
        heap.settle()
        # A failed bind raises SystemExit from inside uvicorn; the stack closes the channels on its way.
        await uvicorn.Server(config).serve()


def main() -> int:
    configure_logging(NAME)
    try:
        settings = GatewaySettings.load()
    except ConfigError as exc:
        logging.getLogger(NAME).error("%s", exc)
        return 2
    telemetry.setup_tracing(NAME)
    uvloop.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
