"""The least-privilege role `/api/postgres/execute` runs as on a local stack (docs/security.md).

Ad-hoc SQL without a credential or connection string runs on the execution service's
`NOETL_POSTGRES_EXECUTE_DSN`, never on the superuser DSN the services use. `up` makes that role
for the stack's database: it may log in, read the `noetl` schema except the sealed secret tables
(credentials, keychain, audit), and nothing else; its password is new at every `up`.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import urllib.parse

import asyncpg

# Ciphertext and audit rows are nobody's business through ad-hoc SQL.
_SEALED = ("credential", "keychain", "secret_audit")


def role_name(database: str) -> str:
    """Roles are cluster-wide: one per database, so stacks sharing a server do not share one."""
    return ("noetl_query_" + re.sub(r"[^a-z0-9_]", "_", database.lower()))[:63]


def ensure_query_role(dsn: str) -> str:
    """`make_query_role` for callers without an event loop (the launcher).

    Raises:
        asyncpg.PostgresError, OSError: the database refused or could not be reached.
    """
    return asyncio.run(make_query_role(dsn))


async def make_query_role(dsn: str) -> str:
    """Creates (or resets) the role for `dsn`'s database and returns a DSN that logs in as it.

    Raises:
        asyncpg.PostgresError, OSError: the database refused or could not be reached.
    """
    parts = urllib.parse.urlsplit(dsn)
    database = parts.path.lstrip("/") or "postgres"
    role = role_name(database)
    password = secrets.token_urlsafe(24)
    await _grant(dsn, database, role, password)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{role}:{urllib.parse.quote(password, safe='')}@{host}" + (
        f":{parts.port}" if parts.port else ""
    )
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


async def _grant(dsn: str, database: str, role: str, password: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
        quoted = _ident(role)
        if not exists:
            await conn.execute(f"CREATE ROLE {quoted} LOGIN")
        # No placeholders in utility statements: the password is URL-safe base64, quoted as a literal.
        await conn.execute(
            f"ALTER ROLE {quoted} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS "
            f"NOINHERIT CONNECTION LIMIT 20 PASSWORD '{password}'"
        )
        await conn.execute(f"GRANT CONNECT ON DATABASE {_ident(database)} TO {quoted}")
        if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = 'noetl'"):
            return  # nothing migrated yet: nothing to read
        await conn.execute(f"GRANT USAGE ON SCHEMA noetl TO {quoted}")
        await conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA noetl TO {quoted}")
        for table in _SEALED:
            if await conn.fetchval("SELECT to_regclass($1)", f"noetl.{table}") is not None:
                await conn.execute(f"REVOKE ALL ON noetl.{table} FROM {quoted}")
    finally:
        await conn.close()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
