"""`python -m services.secrets`: the secrets wallet gRPC service.

Refuses to start without a key-encryption key (data-model.md §9.3): `runner.run` reports the
settings problem, naming what to set, and exits with code 2.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import grpc
from noetl.v1 import binding_pb2_grpc, catalog_pb2_grpc, events_pb2_grpc, secrets_pb2_grpc

from kernel import db, runner
from kernel.grpc_client import ClientAuth, Sharded, open_channel
from kernel.grpc_server import Registrar
from kernel.health import WritePathWatch, database_probe
from kernel.ids import Snowflake
from kernel.lifecycle import Periodic
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


async def _warn_insecure() -> None:
    log.warning(INSECURE_WARNING)


def _purging(keychain: Keychain, every: float) -> Periodic:
    async def purge() -> None:
        purged = await keychain.purge_expired()
        if purged:
            log.info("keychain cleanup: %d expired entries deleted", purged)

    return Periodic("keychain-cleanup", purge, every)


@asynccontextmanager
async def assemble(settings: Settings) -> AsyncIterator[list[Registrar]]:
    """A failed start closes, in reverse order, what was already open."""
    keyring = build_keyring(settings.kek)
    async with AsyncExitStack() as stack:
        if settings.kek.insecure_random_key:
            log.warning(INSECURE_WARNING)
            await stack.enter_async_context(
                Periodic("secrets-insecure-warning", _warn_insecure, INSECURE_WARNING_SECONDS)
            )
        pool = await db.create_pool(settings.basics.pg_dsn)
        stack.push_async_callback(pool.close)
        mesh = ClientAuth(settings.basics.mesh)
        catalog_channel = open_channel(settings.catalog_addr, mesh)
        stack.push_async_callback(catalog_channel.close)
        events = Sharded(settings.events_addrs, events_pb2_grpc.EventServiceStub, mesh)
        stack.push_async_callback(events.close)
        binding = Sharded(settings.execution_addrs, binding_pb2_grpc.WorkBindingServiceStub, mesh)
        stack.push_async_callback(binding.close)
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
        if settings.keychain_cleanup_seconds > 0:
            await stack.enter_async_context(_purging(keychain, settings.keychain_cleanup_seconds))

        def register(server: grpc.aio.Server) -> None:
            secrets_pb2_grpc.add_SecretsServiceServicer_to_server(api, server)

        # The write path is watched: a database gone or stuck reads NOT_SERVING on gRPC health.
        yield [register, WritePathWatch(database_probe(pool))]


def main() -> int:
    return runner.run("secrets", Settings.load, assemble)


if __name__ == "__main__":
    sys.exit(main())
