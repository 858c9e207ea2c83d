"""Embedded Postgres and NATS: real servers that answer over TCP, idempotent start, clean stop."""

from __future__ import annotations

import asyncio
import os
import pwd
import urllib.parse
import uuid
from pathlib import Path

import asyncpg
import nats
import pytest

from noetl_mesh import procs
from noetl_mesh.embedded import PG_SYSTEM_USER, EmbeddedNats, EmbeddedPostgres
from tests.helpers.infra import NatsServer, PgServer, database_of


async def test_postgres_answers_over_tcp(pg_server: PgServer) -> None:
    conn = await asyncpg.connect(pg_server.dsn)
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


async def test_module_database_is_fresh_and_separate(pg_server: PgServer, module_dsn: str) -> None:
    assert database_of(module_dsn) != database_of(pg_server.dsn)
    conn = await asyncpg.connect(module_dsn)
    try:
        tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables == 0
    finally:
        await conn.close()


async def test_jetstream_stores_and_returns_a_message(nats_server: NatsServer) -> None:
    stream = f"TEST_{uuid.uuid4().hex[:8].upper()}"
    client = await nats.connect(nats_server.url)
    try:
        js = client.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
        ack = await js.publish(f"{stream.lower()}.hello", b"payload")
        stored = await js.get_msg(stream, ack.seq)
        assert stored.data == b"payload"
        await js.delete_stream(stream)
    finally:
        await client.close()


async def test_embedded_postgres_lifecycle(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg", port=0)
    dsn = await asyncio.to_thread(server.start)
    pid = server.pid()
    assert pid is not None
    assert urllib.parse.urlsplit(dsn).hostname == "127.0.0.1"

    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        # A commit is acknowledged only once durable: the mesh relays what it acknowledged.
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
        assert await conn.fetchval("SHOW fsync") == "on"
        assert await conn.fetchval("SHOW max_connections") == "200"
        # The socket the mesh's processes use lives in the data directory (local_dsn below).
        assert await conn.fetchval("SHOW unix_socket_directories") == str(server.data_dir)
    finally:
        await conn.close()
    local = server.local_dsn(dsn)
    assert urllib.parse.urlsplit(local).hostname is None
    conn = await asyncpg.connect(local)
    try:
        # A unix-socket session has no client address; same database, same login.
        assert await conn.fetchval(
            "SELECT client_addr IS NULL FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        )
        assert await conn.fetchval("SELECT current_database() || ' ' || current_user") == "noetl postgres"
    finally:
        await conn.close()
    # Another server's DSN is not this one's to rewrite.
    port = urllib.parse.urlsplit(dsn).port
    assert port is not None
    elsewhere = dsn.replace(f":{port}/", f":{port + 1}/")
    assert server.local_dsn(elsewhere) == elsewhere
    if os.geteuid() == 0:
        # Postgres refuses to run as root; it must be running as the system user made for it.
        assert os.stat(f"/proc/{pid}").st_uid == pwd.getpwnam(PG_SYSTEM_USER).pw_uid

    # Idempotent, from this object and from a second one as a second command would use.
    assert await asyncio.to_thread(server.start) == dsn
    assert await asyncio.to_thread(EmbeddedPostgres(tmp_path / "pg", port=0).start) == dsn
    assert server.pid() == pid

    await asyncio.to_thread(server.stop)
    assert server.pid() is None
    assert not procs.is_alive(pid)
    with pytest.raises(OSError):
        await asyncpg.connect(dsn, timeout=5)
    await asyncio.to_thread(server.stop)


async def test_a_data_directory_too_deep_for_a_socket_keeps_to_tcp(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    server = EmbeddedPostgres(deep / "pg", port=0)
    dsn = await asyncio.to_thread(server.start)
    try:
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SHOW unix_socket_directories") == ""
        finally:
            await conn.close()
        assert server.local_dsn(dsn) == dsn
    finally:
        await asyncio.to_thread(server.stop)


async def test_embedded_nats_lifecycle(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats", port=0, monitor_port=0)
    url = await asyncio.to_thread(server.start)
    pid = server.pid()
    assert pid is not None
    assert urllib.parse.urlsplit(url).hostname == "127.0.0.1"

    assert await asyncio.to_thread(server.start) == url
    assert await asyncio.to_thread(EmbeddedNats(tmp_path / "nats", port=0).start) == url
    assert server.pid() == pid

    await asyncio.to_thread(server.stop)
    assert server.pid() is None
    assert not procs.is_alive(pid)
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    assert not procs.port_open(parts.hostname, parts.port)
    await asyncio.to_thread(server.stop)
