"""The mesh's default addresses: one machine, one shard.

What a service binds and where it looks for the others when `NOETL_GRPC_LISTEN`, `NOETL_PORT` or
a `NOETL_*_ADDR(S)` variable is unset, and the ports the launcher lays a local mesh out on (its
shard k > 0 adds k * 100). A deployment sets every address explicitly (deploy/helm).
"""

from __future__ import annotations

HOST = "127.0.0.1"

CATALOG_PORT = 50051
EXECUTION_PORT = 50052
EVENTS_PORT = 50053
OUTBOX_PORT = 50054
SECRETS_PORT = 50055
GATEWAY_PORT = 8082


def local(port: int) -> str:
    """`host:port` of a process on this machine."""
    return f"{HOST}:{port}"


CATALOG = local(CATALOG_PORT)
EXECUTION = local(EXECUTION_PORT)
EVENTS = local(EVENTS_PORT)
OUTBOX = local(OUTBOX_PORT)
SECRETS = local(SECRETS_PORT)
# The gateway's address as a playbook sees it (`server_url`) when `NOETL_PUBLIC_SERVER_URL` is unset.
PUBLIC_SERVER_URL = f"http://localhost:{GATEWAY_PORT}"
