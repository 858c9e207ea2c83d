"""Gateway configuration, read once (http-api.md §1.1, §2.4; data-model.md §13)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway_http.body_limits import BodyLimits
from gateway_http.http_auth import HttpAuthSettings
from kernel import addresses
from kernel.config import EnvReader
from kernel.mesh_auth import MeshAuth
from kernel.mesh_policy import GATEWAY
from kernel.sharding import MAX_SHARD_COUNT


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    host: str
    port: int
    catalog_addr: str
    # Position = shard index, as everywhere in the mesh.
    execution_addrs: tuple[str, ...]
    events_addrs: tuple[str, ...]
    # One outbox service per shard: each drains its own shard's database.
    outbox_addrs: tuple[str, ...]
    secrets_addr: str
    # http-api.md §1.8: the bearer token of /api/internal/*; empty = those routes answer 503.
    internal_api_token: str
    metrics_enabled: bool
    # data-model.md §9.10: the pattern display filter on `GET /api/events/{id}/result`.
    display_redaction: bool
    # Deadline of every call to a service; a missed deadline answers 503 with Retry-After.
    rpc_timeout_seconds: float
    # http-api.md §1.1: longer requests are cut off with 504.
    request_timeout_seconds: float
    # How long shutdown waits for in-flight requests before closing connections.
    drain_seconds: float
    # http-api.md §7.3: the pool a heartbeat without `name` is for (empty: such a heartbeat is a
    # no-op), and whether a heartbeat's `registration` re-creates a pool the registry lost.
    worker_pool_name: str
    worker_pool_auto_recreate: bool
    tls_cert: str
    tls_key: str
    tls_client_ca: str
    # http-api.md §7.5: this deployment's replica numbering, as `/api/runtime/shard-info` reports it.
    shard_index: int
    shard_count: int
    # http-api.md §7.6: the `auth0` block of `/api/runtime/contract` as (key, value) pairs in contract
    # order, empty values left out; no pairs at all unless GATEWAY_AUTH0_DOMAIN is set.
    auth0: tuple[tuple[str, str], ...]
    # Per-route request body limits (413 beyond).
    body_limits: BodyLimits
    # How the gateway proves itself to the services (docs/security.md).
    mesh: MeshAuth
    # Who may call the HTTP API (off by default; docs/security.md).
    http_auth: HttpAuthSettings

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> GatewaySettings:
        """Raises ConfigError listing every invalid or missing variable."""
        env = EnvReader(environ)
        catalog = env.addresses("NOETL_CATALOG_ADDR", addresses.CATALOG)
        execution_addrs = env.addresses("NOETL_EXECUTION_ADDRS", addresses.EXECUTION)
        # Unset, the deployment's shard count is the number of execution shards it routes to.
        shard_count = env.integer(
            "NOETL_SHARD_COUNT", max(1, len(execution_addrs)), minimum=1, maximum=MAX_SHARD_COUNT
        )
        auth0 = _auth0(env)
        settings = cls(
            host=env.text("NOETL_HOST", "0.0.0.0"),
            port=env.integer("NOETL_PORT", addresses.GATEWAY_PORT, minimum=0, maximum=65535),
            catalog_addr=catalog[0] if catalog else "",
            execution_addrs=execution_addrs,
            events_addrs=env.addresses("NOETL_EVENTS_ADDRS", addresses.EVENTS),
            outbox_addrs=env.addresses("NOETL_OUTBOX_ADDRS", addresses.OUTBOX),
            secrets_addr=env.text("NOETL_SECRETS_ADDR", addresses.SECRETS),
            # Surrounding whitespace (a mounted secret's trailing newline) is not part of it.
            internal_api_token=env.text("NOETL_INTERNAL_API_TOKEN"),
            metrics_enabled=not env.flag("NOETL_DISABLE_METRICS", False),
            display_redaction=env.flag("NOETL_DISPLAY_REDACTION", True),
            rpc_timeout_seconds=env.number("NOETL_GATEWAY_RPC_TIMEOUT", 60.0, minimum=0.1),
            request_timeout_seconds=env.number("NOETL_GATEWAY_REQUEST_TIMEOUT", 1799.0, minimum=1.0),
            drain_seconds=env.number("NOETL_GATEWAY_DRAIN_SECONDS", 30.0, minimum=0.0),
            worker_pool_name=env.text("NOETL_WORKER_POOL_NAME"),
            worker_pool_auto_recreate=env.flag("NOETL_WORKER_POOL_AUTO_RECREATE", True),
            tls_cert=env.text("NOETL_TLS_CERT"),
            tls_key=env.text("NOETL_TLS_KEY"),
            tls_client_ca=env.text("NOETL_TLS_CLIENT_CA"),
            shard_index=env.integer("NOETL_SHARD_INDEX", 0, minimum=0, maximum=shard_count - 1),
            shard_count=shard_count,
            auth0=auth0,
            body_limits=BodyLimits.load(env),
            mesh=MeshAuth.read(env, GATEWAY, serves=False),
            http_auth=HttpAuthSettings.read(env, dict(auth0)),
        )
        if len(catalog) != 1:
            env.problem("NOETL_CATALOG_ADDR must be exactly one host:port (the catalog is not sharded)")
        if bool(settings.tls_cert) != bool(settings.tls_key):
            env.problem("NOETL_TLS_CERT and NOETL_TLS_KEY must be set together")
        if settings.tls_client_ca and not settings.tls_cert:
            env.problem("NOETL_TLS_CLIENT_CA requires NOETL_TLS_CERT and NOETL_TLS_KEY")
        env.finish()
        return settings


AUTH0_VARIABLES = (
    ("domain", "GATEWAY_AUTH0_DOMAIN"),
    ("client_id", "GATEWAY_AUTH0_CLIENT_ID"),
    ("redirect_uri", "GATEWAY_AUTH0_REDIRECT_URI"),
    ("audience", "GATEWAY_AUTH0_AUDIENCE"),
)


def _auth0(env: EnvReader) -> tuple[tuple[str, str], ...]:
    """The configured Auth0 values, trimmed; none when the domain is unset or blank."""
    values = [(key, env.text(name)) for key, name in AUTH0_VARIABLES]
    if not values[0][1]:
        return ()
    return tuple((key, value) for key, value in values if value)
