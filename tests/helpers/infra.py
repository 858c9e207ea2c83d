"""Real Postgres and NATS for tests: the ones named by NOETL_PG_DSN / NOETL_NATS_URL, else embedded.

Embedded servers get free ports and a temporary directory, so a test run never touches a
developer's `noetl-mesh up` stack.
"""

from __future__ import annotations

import re
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from noetl_mesh.embedded import EmbeddedNats, EmbeddedPostgres


@dataclass(frozen=True)
class PgServer:
    """A running Postgres. `dsn` names a database the tests may connect to but should not fill."""

    dsn: str
    embedded: bool


@dataclass(frozen=True)
class NatsServer:
    url: str
    embedded: bool


@contextmanager
def postgres_server(environ: Mapping[str, str], workdir: Path) -> Iterator[PgServer]:
    """NOETL_PG_DSN when set, else an embedded server in `workdir` that is stopped on exit."""
    dsn = environ.get("NOETL_PG_DSN")
    if dsn:
        yield PgServer(dsn, embedded=False)
        return
    with EmbeddedPostgres(workdir, port=0) as server:
        port = server.port()
        if port is None:
            raise RuntimeError(f"embedded Postgres in {workdir} stopped right after starting")
        yield PgServer(server.dsn(port), embedded=True)


@contextmanager
def nats_server(environ: Mapping[str, str], workdir: Path) -> Iterator[NatsServer]:
    """NOETL_NATS_URL when set, else an embedded JetStream server in `workdir` stopped on exit."""
    url = environ.get("NOETL_NATS_URL")
    if url:
        yield NatsServer(url, embedded=False)
        return
    with EmbeddedNats(workdir, port=0, monitor_port=0) as server:
        embedded_url = server.url()
        if embedded_url is None:
            raise RuntimeError(f"embedded NATS in {workdir} stopped right after starting")
        yield NatsServer(embedded_url, embedded=True)


async def fresh_database(server: PgServer, prefix: str = "test") -> str:
    """CREATE a database with a unique name on `server` and return a DSN for it."""
    name = f"{re.sub(r'[^a-z0-9_]', '_', prefix.lower())[:40]}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server.dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server.dsn, name)


async def drop_database(server: PgServer, dsn: str) -> None:
    """DROP the database `dsn` names, disconnecting whoever is still in it."""
    name = database_of(dsn)
    conn = await asyncpg.connect(server.dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def with_database(dsn: str, database: str) -> str:
    """`dsn` (URL form) pointing at another database; credentials, host and options kept."""
    parts = urllib.parse.urlsplit(dsn)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{database}"))


def database_of(dsn: str) -> str:
    return urllib.parse.urlsplit(dsn).path.lstrip("/")
