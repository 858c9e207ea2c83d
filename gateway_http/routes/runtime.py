"""Runtime routes: shard arithmetic and the machine-readable contract.

- `GET /api/runtime/shard-info` (http-api.md §7.5): which shard owns an execution id, with the
  mesh's one `shard_for`; no backend is called.
- `GET /api/runtime/contract` (§7.6): what `noetl context init --from-gateway` reads. Served only
  under `/api` (§1.1), so it is declared as a root route with its full path. Its `routes` are read
  from the app that answers, so they list exactly what this deployment serves.

`GET /openapi.json`, in the same group of the contract, is served by `gateway_http.openapi.document`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway_http.encoding import json_response
from gateway_http.openapi.build import Operation, ok, query_param, ref
from gateway_http.routes import Endpoint
from gateway_http.settings import GatewaySettings
from gateway_http.validation import INT64_MAX, INT64_MIN
from kernel.errors import InvalidArgument
from kernel.metrics import BUILD_VERSION
from kernel.sharding import MAX_SHARD_COUNT, shard_for

_DECIMAL = re.compile(r"-?[0-9]+")
# A sign and the 19 digits of a 64-bit integer, plus leading zeros a client may send.
_MAX_DIGITS = 32

# §7.6: route groups in the order the contract lists them; a path belongs to the first group
# whose prefix it starts with. A route matching none is grouped by its first segment after /api/.
_GROUP_PREFIXES = (
    ("health", ("/health", "/metrics", "/api/health", "/api/pool/")),
    ("catalog", ("/api/catalog/",)),
    ("executions", ("/api/execute", "/api/executions")),
    ("events", ("/api/events",)),
    ("commands", ("/api/commands/",)),
    ("runtime", ("/api/worker/", "/api/runtime/", "/openapi.json")),
    ("variables", ("/api/vars/",)),
    ("credentials", ("/api/credentials", "/api/keychain/")),
    ("results", ("/api/result/",)),
    ("database", ("/api/postgres/", "/api/db/")),
    ("internal", ("/api/internal/",)),
)
_CLI_OPERATION_MAPPING = {
    "exec": "/noetl/execute",
    "status": "/noetl/executions/{id}/status",
    "detail": "/noetl/executions/{id}",
    "events": "/noetl/executions/{id}/events",
    "cancel": "/noetl/executions/{id}/cancel",
    "catalog_list": "/noetl/catalog/list",
    "catalog_register": "/noetl/catalog/register",
    "query": "/noetl/postgres/execute",
}


class RuntimeRoutes:
    def __init__(self, settings: GatewaySettings) -> None:
        self._settings = settings

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "/runtime/shard-info",
                self.shard_info,
                ("GET",),
                Operation(
                    "runtime_shard_info",
                    "runtime",
                    "Which shard owns an execution id (`shard_for`, data-model.md §10)",
                    ok("The shard", ref("ShardInfo")),
                    ("400",),
                    description="A missing parameter, a bad id or a count outside 1..1024 answers 400.",
                    parameters=(
                        query_param("execution_id", ref("IdText"), "Execution id", required=True),
                        query_param(
                            "shard_count",
                            {"type": "integer", "minimum": 1, "maximum": MAX_SHARD_COUNT},
                            "Number of shards",
                            required=True,
                        ),
                    ),
                ),
            ),
            Endpoint(
                "/api/runtime/contract",
                self.contract,
                ("GET",),
                Operation(
                    "runtime_contract",
                    "runtime",
                    "Machine-readable description of this deployment (only under /api)",
                    ok("The contract", ref("RuntimeContract")),
                ),
                root=True,
            ),
        ]

    async def shard_info(self, request: Request) -> Response:
        """§7.5: every problem with the two parameters is reported at once, as one 400 detail."""
        problems: list[str] = []
        execution_id = _execution_id(request.query_params.get("execution_id"), problems)
        shard_count = _shard_count(request.query_params.get("shard_count"), problems)
        if problems:
            raise InvalidArgument("; ".join(problems))
        return json_response(
            {
                "execution_id": str(execution_id),
                "shard_count": shard_count,
                "shard_index": shard_for(execution_id, shard_count),
                "source": "noetl-server",
                "hash_function": "twox_hash::XxHash64",
                "seed": 0,
                "server_config": {
                    "shard_index": self._settings.shard_index,
                    "shard_count": self._settings.shard_count,
                },
            }
        )

    async def contract(self, request: Request) -> Response:
        """§7.6. `auth.mode` is `none` unless HTTP auth is on (`bearer`): without it `/noetl/*`
        accepts the CLI's session headers without checking them (docs/decisions.md, HTTP surface)."""
        body: dict[str, Any] = {
            "contract_version": "1",
            "api_version": "v1",
            "server_version": BUILD_VERSION,
            "gateway_version": BUILD_VERSION,
            "summary": "NoETL control plane HTTP API",
            "auth": {
                "mode": "bearer" if self._settings.http_auth.enabled else "none",
                "accepted_headers": [
                    "Authorization: Bearer <session_token>",
                    "x-session-token: <session_token>",
                ],
            },
            "routes": served_route_groups(request.app.routes),
            "proxy_contract": {"incoming_prefix": "/noetl/", "upstream_prefix": "/api/"},
            "cli_operation_mapping": _CLI_OPERATION_MAPPING,
        }
        if self._settings.auth0:
            body["auth0"] = dict(self._settings.auth0)
        return json_response(body)


def served_route_groups(routes: Iterable[BaseRoute]) -> dict[str, list[str]]:
    """`"METHOD /path"` of every route under `/api` or the root, grouped as §7.6 shows them.

    The `/noetl` twins are left out: the contract's `proxy_contract` says how they map.
    """
    groups: dict[str, list[str]] = {name: [] for name, _ in _GROUP_PREFIXES}
    for route in routes:
        if not isinstance(route, Route) or route.path.startswith("/noetl/"):
            continue
        # `path_format` is the template without Starlette's convertors (`{identifier:path}`).
        path = route.path_format
        # HEAD is Starlette's automatic twin of GET, not a route of the contract.
        methods = sorted((route.methods or set()) - {"HEAD"})
        groups.setdefault(_group(path), []).extend(f"{method} {path}" for method in methods)
    return {name: entries for name, entries in groups.items() if entries}


def _group(path: str) -> str:
    for name, prefixes in _GROUP_PREFIXES:
        if path.startswith(prefixes):
            return name
    return path.removeprefix("/api/").split("/", 1)[0]


def _execution_id(raw: str | None, problems: list[str]) -> int:
    if raw is None:
        problems.append("execution_id is required")
        return 0
    value = _integer(raw, INT64_MIN, INT64_MAX)
    if value is None:
        problems.append(f"execution_id must be a decimal 64-bit integer, got {raw!r}")
        return 0
    return value


def _shard_count(raw: str | None, problems: list[str]) -> int:
    if raw is None:
        problems.append("shard_count is required")
        return 0
    value = _integer(raw, 1, MAX_SHARD_COUNT)
    if value is None:
        problems.append(f"shard_count must be an integer from 1 to {MAX_SHARD_COUNT}, got {raw!r}")
        return 0
    return value


def _integer(raw: str, minimum: int, maximum: int) -> int | None:
    """A decimal integer within bounds; the length check spares `int()` a huge digit string."""
    text = raw.strip()
    if len(text) > _MAX_DIGITS or not _DECIMAL.fullmatch(text):
        return None
    value = int(text)
    return value if minimum <= value <= maximum else None
