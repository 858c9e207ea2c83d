"""The secrets wallet hosted in this process, and key material for tests.

`running_secrets` assembles the service exactly as `python -m services.secrets` does (its own
`assemble(settings)` under `GrpcHost`) on an ephemeral port against a migrated database.
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
from noetl.v1 import secrets_pb2_grpc

from kernel.grpc_server import GrpcHost
from kernel.mesh_auth import MeshAuth
from kernel.mesh_guard import ServerAuth
from kernel.migrate import migrate
from services.secrets.__main__ import assemble
from services.secrets.settings import Settings
from tests.helpers.nowhere import NOWHERE
from tests.helpers.services import basics

LOCALHOST = "127.0.0.1"
# Nothing listens here: a wallet that never resolves aliases does not need the other services.


def new_key() -> str:
    """A fresh local KEK, as NOETL_ENCRYPTION_KEY expects it."""
    return base64.b64encode(os.urandom(32)).decode()


def wallet_settings(
    dsn: str,
    env: Mapping[str, str],
    *,
    catalog_addr: str = NOWHERE,
    events_addr: str = NOWHERE,
    execution_addr: str = NOWHERE,
    mesh: MeshAuth | None = None,
) -> Settings:
    """Settings read from `env` (the KEK variables) with this test's database and peers.

    Raises:
        ConfigError: as the service would at start-up.
    """
    loaded = Settings.load(
        {
            "NOETL_PG_DSN": dsn,
            "NOETL_CATALOG_ADDR": catalog_addr,
            "NOETL_EVENTS_ADDRS": events_addr,
            "NOETL_EXECUTION_ADDRS": execution_addr,
            "NOETL_KEYCHAIN_CLEANUP_SECONDS": "0",
            "NOETL_MESH_AUTH": "off",
            **env,
        }
    )
    return Settings(
        basics=basics(dsn, mesh=mesh),
        kek=loaded.kek,
        audit_required=loaded.audit_required,
        catalog_addr=loaded.catalog_addr,
        events_addrs=loaded.events_addrs,
        execution_addrs=loaded.execution_addrs,
        keychain_cleanup_seconds=loaded.keychain_cleanup_seconds,
    )


@dataclass(frozen=True)
class Wallet:
    address: str
    stub: secrets_pb2_grpc.SecretsServiceStub


@asynccontextmanager
async def running_secrets(settings: Settings, *, migrated: bool = True) -> AsyncIterator[Wallet]:
    """Hosts one wallet process-equivalent; stubs use a plain channel (callers see raw gRPC status)."""
    if not migrated:
        await migrate(settings.basics.pg_dsn)
    async with assemble(settings) as registrars:
        host = GrpcHost(
            "secrets", f"{LOCALHOST}:0", registrars, auth=ServerAuth(settings.basics.mesh), grace=2.0
        )
        port = await host.start()
        address = f"{LOCALHOST}:{port}"
        channel = grpc.aio.insecure_channel(address)
        try:
            yield Wallet(address, secrets_pb2_grpc.SecretsServiceStub(channel))
        finally:
            await channel.close()
            await host.stop()
