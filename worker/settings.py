from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from kernel import addresses
from kernel.bus import BusSettings, read_bus_settings
from kernel.config import EnvReader
from kernel.mesh_auth import MeshAuth, instance_of
from kernel.mesh_policy import WORKER
from worker.executor import DEFAULT_CANCEL_CHECK_SECONDS

# Commands in flight. A command mostly waits (its claim, its events' commit, HTTP, SQL): 4 left
# two cores a fifth idle with 50 chains queued on the worker; CPU-bound python code is bounded
# by the python process pool instead (docs/decisions.md, "Worker").
DEFAULT_CONCURRENCY = 16


@dataclass(frozen=True, slots=True)
class Settings:
    worker_id: str
    bus: BusSettings
    consumer: str
    pools: tuple[str, ...]
    execution_addrs: tuple[str, ...]
    events_addrs: tuple[str, ...]
    concurrency: int
    python_processes: int
    default_timeout: float
    heartbeat_seconds: float
    # How often a running command checks for its execution's cancellation (dsl.md §13).
    cancel_check_seconds: float
    server_url: str
    secrets_addr: str  # empty: no secrets service, so `auth` and `keychain` fail with a clear error
    max_result_bytes: int
    # A larger serialised result goes to the result store; events carry a reference (dsl.md §9.12).
    inline_result_bytes: int
    shutdown_grace_seconds: float
    # How this worker proves itself to the services it calls (docs/security.md).
    mesh: MeshAuth
    # How often the worker's pool entry is heartbeated (dsl.md §16 step 1).
    pool_heartbeat_seconds: float = 15.0

    @classmethod
    def load(cls) -> Settings:
        """Raises ConfigError listing every invalid or missing variable."""
        env = EnvReader()
        concurrency = env.integer("NOETL_WORKER_CONCURRENCY", DEFAULT_CONCURRENCY, minimum=1, maximum=256)
        pools = env.text("NOETL_WORKER_POOLS", "shared,system,subscription")
        mesh = MeshAuth.read(env, WORKER, serves=False)
        settings = cls(
            worker_id=_worker_id(env, mesh),
            bus=read_bus_settings(env),
            consumer=env.text("NATS_CONSUMER", "noetl_worker_pool"),
            pools=tuple(p.strip() for p in pools.split(",") if p.strip()),
            execution_addrs=env.addresses("NOETL_EXECUTION_ADDRS", addresses.EXECUTION),
            events_addrs=env.addresses("NOETL_EVENTS_ADDRS", addresses.EVENTS),
            concurrency=concurrency,
            python_processes=env.integer("NOETL_WORKER_PYTHON_PROCESSES", min(concurrency, 4), minimum=1),
            default_timeout=env.number("NOETL_WORKER_DEFAULT_TIMEOUT_SECONDS", 3600.0, minimum=0.1),
            # A quarter of the 120 s claim lease (data-model.md §6.3).
            heartbeat_seconds=env.number("NOETL_WORKER_HEARTBEAT_SECONDS", 30.0, minimum=0.1),
            cancel_check_seconds=env.number(
                "NOETL_WORKER_CANCEL_CHECK_SECONDS", DEFAULT_CANCEL_CHECK_SECONDS, minimum=0.1
            ),
            server_url=env.text("NOETL_PUBLIC_SERVER_URL", addresses.PUBLIC_SERVER_URL),
            secrets_addr=env.text("NOETL_SECRETS_ADDR", addresses.SECRETS),
            # A serialised result over this fails the command with a clear error (dsl.md §9.12).
            max_result_bytes=env.integer(
                "NOETL_WORKER_MAX_RESULT_BYTES", 16 * 1024 * 1024, minimum=1024, maximum=48 * 1024 * 1024
            ),
            inline_result_bytes=env.integer("NOETL_WORKER_INLINE_RESULT_BYTES", 100 * 1024, minimum=0),
            # On SIGTERM: stop taking work, let running commands finish for this long, then hand
            # them back (their claim lease lets another worker take them).
            shutdown_grace_seconds=env.number("NOETL_WORKER_SHUTDOWN_GRACE_SECONDS", 30.0, minimum=0.0),
            mesh=mesh,
            pool_heartbeat_seconds=env.number("NOETL_WORKER_POOL_HEARTBEAT_SECONDS", 15.0, minimum=0.1),
        )
        env.finish()
        return settings


def _worker_id(env: EnvReader, mesh: MeshAuth) -> str:
    """The id the mesh identity proves (`worker:<id>`): the services refuse a worker that claims,
    reports or resolves under any other. A shared `worker` identity: NOETL_WORKER_ID, else host-pid."""
    proven = instance_of(mesh.identity)
    declared = env.text("NOETL_WORKER_ID", proven or f"worker-{socket.gethostname()}-{os.getpid()}")
    if proven and declared != proven:
        env.problem(f"NOETL_WORKER_ID={declared!r} differs from the mesh identity {mesh.identity!r}")
    return declared
