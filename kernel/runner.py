"""The one `__main__` path of every gRPC service: logging, uvloop, tracing, metrics, host."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any, Protocol, TypeVar

import uvloop

from kernel import failpoints, heap, lifecycle, metrics, telemetry
from kernel.config import ConfigError, ServiceBasics
from kernel.grpc_server import GrpcHost, Registrar
from kernel.mesh_guard import ServerAuth

SettingsT = TypeVar("SettingsT", bound="HasBasics")


class HasBasics(Protocol):
    @property
    def basics(self) -> ServiceBasics: ...


def configure_logging(name: str) -> None:
    logging.basicConfig(
        level=os.environ.get("NOETL_LOG_LEVEL", "INFO").upper(),
        format=f"%(asctime)s %(levelname)s {name} %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run(
    name: str,
    load_settings: Callable[[], SettingsT],
    assemble: Callable[[SettingsT], AbstractAsyncContextManager[list[Registrar]]],
) -> int:
    """Runs until SIGTERM/SIGINT; `assemble` wires dependencies and yields servicer registrars."""
    configure_logging(name)
    try:
        failpoints.arm_from(os.environ)
        settings = load_settings()
    except (ConfigError, ValueError) as exc:
        logging.getLogger(name).error("%s", exc)
        return 2
    telemetry.setup_tracing(name)
    try:
        code: int = uvloop.run(_serve(name, settings, assemble))
    except Exception as exc:
        # Whatever start had opened is closed by now (`_serve`'s exit stack): one line says why.
        log = logging.getLogger(name)
        log.error("stopped: %s: %s", type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
        return 1
    return code


async def _serve(
    name: str,
    settings: SettingsT,
    assemble: Callable[[SettingsT], AbstractAsyncContextManager[list[Registrar]]],
) -> int:
    metrics.serve_metrics(settings.basics.metrics_port)
    # A failure anywhere in start (a database, NATS or a port out of reach) closes, in reverse
    # order, what was already open, and the process exits with the error.
    async with AsyncExitStack() as stack:
        registrars = await stack.enter_async_context(assemble(settings))
        host = GrpcHost(name, settings.basics.listen, registrars, auth=ServerAuth(settings.basics.mesh))
        await host.start()
        stack.push_async_callback(host.stop)
        host.install_signal_handlers()
        heap.settle()
        await _until_stopped(host)
    return 0


class ComponentCrashed(RuntimeError):
    pass


async def _until_stopped(host: GrpcHost) -> None:
    """Serves until a signal stops the host, or until a background component dies: then the
    process closes everything and exits 1, and its supervisor (the launcher's, or Kubernetes)
    starts a whole one, rather than a process serving on without its feed or reaper."""
    crash = lifecycle.first_crash()
    stopped = asyncio.ensure_future(host.wait())
    either: list[asyncio.Future[Any]] = [stopped, crash]
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    if not stopped.done():
        stopped.cancel()
        found = crash.result()
        raise ComponentCrashed(f"{found.component} stopped on an error: {found.error!r}") from found.error
