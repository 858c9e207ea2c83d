"""`python -m services.secrets`: the secrets wallet gRPC service.

Refuses to start without a key-encryption key (data-model.md §9.3): `runner.run` reports the
settings problem, naming what to set, and exits with code 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from noetl.v1 import binding_pb2_grpc, catalog_pb2_grpc, events_pb2_grpc, secrets_pb2_grpc

from kernel import db, runner
from kernel.grpc_client import ClientAuth, Sharded, open_channel
from kernel.grpc_server import Registrar
from kernel.health import WritePathWatch, database_probe
from kernel.ids import Snowflake
from services.secrets.api import SecretsApi
from services.secrets.audit import Auditor
from services.secrets.cipher import Cipher
from services.secrets.clients import CatalogClient, EventsClient, WorkBindingClient
from services.secrets.envelope import KEY_BYTES
from services.secrets.kek import LOCAL, KekProvider, Keyring, LocalKek
from services.secrets.keychain import Keychain
from services.secrets.resolution import AliasResolver
from services.secrets.rotation import Rotator
from services.secrets.service import Credentials
from services.secrets.settings import KekSettings, Settings
from services.secrets.store import SecretsStore
from services.secrets.vault import VaultTransitKek

log = logging.getLogger("services.secrets")
INSECURE_WARNING_SECONDS = 300.0
INSECURE_WARNING = (
    "INSECURE: NOETL_ALLOW_INSECURE_DEFAULT_KEY is set and NOETL_ENCRYPTION_KEY is not; secrets are "
    "sealed with a random per-process key and CANNOT be read after a restart. Never run like this "
    "in production: set NOETL_ENCRYPTION_KEY."
)


def build_keyring(kek: KekSettings) -> Keyring:
    """The configured provider wraps; a local keyring, when keys exist, also unwraps.

    With the insecure escape hatch the local keyring is one random key (the caller warns).
    """
    keys = dict(kek.local_keys)
    if kek.insecure_random_key:
        keys = {kek.local_version: os.urandom(KEY_BYTES)}
    local = LocalKek(keys, kek.local_version if kek.local_version in keys else max(keys)) if keys else None
    if kek.provider == LOCAL:
        assert local is not None  # settings refuse a local provider without keys
        return Keyring(local)
    assert kek.vault is not None  # settings always read them for vault-transit
    others: dict[str, KekProvider] = {LOCAL: local} if local is not None else {}
    return Keyring(VaultTransitKek(kek.vault), others)


async def _warn_insecure_forever() -> None:
    while True:
        await asyncio.sleep(INSECURE_WARNING_SECONDS)
        log.warning(INSECURE_WARNING)


async def _purge_expired_forever(keychain: Keychain, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            purged = await keychain.purge_expired()
        except Exception:
            log.exception("keychain cleanup failed; retrying in %.0fs", every)
            continue
        if purged:
            log.info("keychain cleanup: %d expired entries deleted", purged)


@asynccontextmanager
async def assemble(settings: Settings) -> AsyncIterator[list[Registrar]]:
    keyring = build_keyring(settings.kek)
    if settings.kek.insecure_random_key:
        log.warning(INSECURE_WARNING)
    pool = await db.create_pool(settings.basics.pg_dsn)
    mesh = ClientAuth(settings.basics.mesh)
    catalog_channel = open_channel(settings.catalog_addr, mesh)
    events = Sharded(settings.events_addrs, events_pb2_grpc.EventServiceStub, mesh)
    binding = Sharded(settings.execution_addrs, binding_pb2_grpc.WorkBindingServiceStub, mesh)
    tasks: list[asyncio.Task[None]] = []
    try:
        store = SecretsStore(pool)
        ids = Snowflake(settings.basics.machine_id)
        cipher = Cipher(keyring)
        auditor = Auditor(store, ids, required=settings.audit_required)
        keychain = Keychain(store, cipher, auditor)
        aliases = AliasResolver(
            executions=EventsClient(events),
            playbooks=CatalogClient(catalog_pb2_grpc.CatalogServiceStub(catalog_channel)),
            keychain=keychain,
            store=store,
            auditor=auditor,
            cipher=cipher,
        )
        api = SecretsApi(
            Credentials(store, cipher, auditor, ids, aliases, binding=WorkBindingClient(binding)),
            keychain,
            Rotator(store, keyring),
            store,
        )
        if settings.kek.insecure_random_key:
            tasks.append(asyncio.create_task(_warn_insecure_forever(), name="secrets-insecure-warning"))
        if settings.keychain_cleanup_seconds > 0:
            tasks.append(
                asyncio.create_task(
                    _purge_expired_forever(keychain, settings.keychain_cleanup_seconds),
                    name="keychain-cleanup",
                )
            )

        def register(server: grpc.aio.Server) -> None:
            secrets_pb2_grpc.add_SecretsServiceServicer_to_server(api, server)

        # The write path is watched: a database gone or stuck reads NOT_SERVING on gRPC health.
        yield [register, WritePathWatch(database_probe(pool))]
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await binding.close()
        await events.close()
        await catalog_channel.close()
        await pool.close()


def main() -> int:
    return runner.run("secrets", Settings.load, assemble)


if __name__ == "__main__":
    sys.exit(main())
