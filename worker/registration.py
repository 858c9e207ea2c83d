"""The worker's entry in the pool registry (dsl.md §16 step 1, data-model.md §3.13).

Registered at start, heartbeated while the worker runs, marked `offline` after a graceful stop.
Claims read the entry to tell a gone worker from a busy one (data-model.md §6.2), so a worker
that is alive keeps it fresh; but the registry is advisory for the worker itself: a failed call
is logged and tried again at the next beat, never a reason to stop taking work.
"""

from __future__ import annotations

import logging
import os
import socket

from noetl.v1 import pools_pb2, pools_pb2_grpc

from kernel import jsonutil
from kernel.errors import MeshError, NotFound
from kernel.lifecycle import Periodic
from language.runtime_kinds import WORKER_POOL

log = logging.getLogger(__name__)

_CALL_TIMEOUT = 10.0


def worker_registration(
    worker_id: str, pools: tuple[str, ...], concurrency: int
) -> pools_pb2.PoolRegistration:
    """This process as a worker pool: named by its worker id (what its claims carry)."""
    return pools_pb2.PoolRegistration(
        name=worker_id,
        kind=WORKER_POOL,
        status="ready",
        capacity=concurrency,
        labels_json=jsonutil.dumps({"pools": list(pools)}),
        runtime_json=jsonutil.dumps({"type": "python", "pid": os.getpid(), "hostname": socket.gethostname()}),
    )


class PoolMembership(Periodic):
    """Registers at start, then heartbeats every interval; `shutdown()` stops the beat and leaves."""

    def __init__(
        self,
        registry: pools_pb2_grpc.PoolServiceStub,
        registration: pools_pb2.PoolRegistration,
        interval: float,
    ) -> None:
        super().__init__("pool-heartbeat", self._beat, interval, first_now=True)
        self._registry = registry
        self._registration = registration
        self._registered = False
        self._left = False

    async def shutdown(self) -> None:
        started = self._task is not None
        await super().shutdown()
        if started and not self._left:
            self._left = True
            await self.leave()

    async def _beat(self) -> None:
        """An `unknown` answer to the heartbeat registers again."""
        try:
            if self._registered:
                self._registered = await self._heartbeat()
            if not self._registered:
                await self._register()
                self._registered = True
        except MeshError as exc:
            log.warning("pool registry call for %s failed, will retry: %s", self._registration.name, exc)

    async def leave(self) -> None:
        """Marks the pool offline, after the beat has stopped (a late heartbeat would set it ready)."""
        try:
            await self._registry.Deregister(
                pools_pb2.PoolServiceDeregisterRequest(name=self._registration.name, kind=WORKER_POOL),
                timeout=_CALL_TIMEOUT,
            )
        except MeshError as exc:
            log.warning("could not deregister pool %s: %s", self._registration.name, exc)

    async def _heartbeat(self) -> bool:
        """False when the registry no longer knows this pool (a wiped or restored database)."""
        try:
            await self._registry.Heartbeat(
                pools_pb2.PoolServiceHeartbeatRequest(name=self._registration.name, kind=WORKER_POOL),
                timeout=_CALL_TIMEOUT,
            )
        except NotFound:
            log.warning("pool %s is unknown to the registry; registering again", self._registration.name)
            return False
        return True

    async def _register(self) -> None:
        await self._registry.Register(
            pools_pb2.PoolServiceRegisterRequest(registration=self._registration), timeout=_CALL_TIMEOUT
        )
        log.info("registered worker pool %s", self._registration.name)
