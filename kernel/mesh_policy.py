"""Which caller may call which RPC: the mesh's service-to-service policy, as data.

Every entry names the callers that actually make that call (the call sites are listed in
docs/security.md); anything not listed is refused, including an RPC added later and forgotten
here (tests/unit/test_mesh_policy.py fails until it is listed). A few RPCs have a *variant*
whose request asks for more (credential data): the variant is a separate entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

GATEWAY = "gateway"
WORKER = "worker"
CATALOG = "catalog"
EXECUTION = "execution"
EVENTS = "events"
OUTBOX = "outbox"
SECRETS = "secrets"
# `noetl-mesh run` following a run's events.
LAUNCHER = "launcher"
CALLERS = (GATEWAY, WORKER, CATALOG, EXECUTION, EVENTS, OUTBOX, SECRETS, LAUNCHER)

PACKAGE = "/noetl.v1."
# Reachable without credentials: probes and tooling.
OPEN_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.",
)
INCLUDE_DATA = "include_data"

_G = frozenset({GATEWAY})
_GW = frozenset({GATEWAY, WORKER})

POLICY: Mapping[str, frozenset[str]] = {
    # Catalog
    "CatalogService/Register": _G,
    "CatalogService/RegisterBatch": _G,
    "CatalogService/List": _G,
    "CatalogService/GetResource": frozenset({GATEWAY, EXECUTION, SECRETS}),
    "CatalogService/UiSchema": _G,
    "CatalogService/Delete": _G,
    "CatalogService/Restore": _G,
    # Events
    "EventService/Append": frozenset({EXECUTION}),
    "EventService/AppendMany": frozenset({EXECUTION}),
    "EventService/Emit": _GW,
    "EventService/EmitMany": _G,
    "EventService/StreamEmit": frozenset({WORKER}),
    "EventService/EmitBatch": _G,
    "EventService/GetBatch": _G,
    "EventService/GetEventResult": _G,
    "EventService/ListEvents": frozenset({GATEWAY, EXECUTION, SECRETS}),
    "EventService/Subscribe": frozenset({GATEWAY, WORKER, LAUNCHER}),
    "EventService/Project": _G,
    "EventService/CatalogUsage": frozenset({CATALOG}),
    # Execution (the worker's `playbook` tool starts child executions)
    "ExecutionService/Start": _GW,
    "ExecutionService/Get": _G,
    "ExecutionService/ListExecutions": _G,
    "ExecutionService/Status": _G,
    # An execution shard cancels a cascade's members on their owning shards (`cascade_from`).
    "ExecutionService/Cancel": frozenset({GATEWAY, EXECUTION}),
    # A cascade's shard asks every other shard for the family's children on it.
    "ExecutionService/Children": frozenset({EXECUTION}),
    # A worker asks it while a tool runs, to stop the tool of a cancelled run (dsl.md §13).
    "ExecutionService/CancellationCheck": _GW,
    "ExecutionService/Finalize": _G,
    "ExecutionService/Rerun": _G,
    "ExecutionService/StartBatch": _G,
    "ExecutionService/Cleanup": _G,
    "CommandService/GetCommand": _G,
    "CommandService/Claim": _GW,
    "PoolService/Register": _GW,
    "PoolService/Deregister": _GW,
    "PoolService/Heartbeat": _GW,
    "PoolService/List": _G,
    "AdminService/PoolStatus": _G,
    "AdminService/CheckSchema": _G,
    "AdminService/ExecuteSql": _G,
    "VarsService/SetVariables": _G,
    "VarsService/ListVariables": _G,
    "VarsService/GetVariable": _G,
    "VarsService/DeleteVariable": _G,
    "VarsService/DeleteVariables": _G,
    "ResultService/Put": _GW,
    "ResultService/Resolve": _GW,
    # Whether a worker's claim binds it to a credential (asked by the secrets wallet on Resolve).
    "WorkBindingService/CheckSecretUse": frozenset({SECRETS}),
    # Outbox
    "OutboxService/ClaimRows": _G,
    "OutboxService/MarkPublished": frozenset({GATEWAY, EVENTS}),
    "OutboxService/MarkFailed": frozenset({GATEWAY, EVENTS}),
    "OutboxService/PendingCount": _G,
    "OutboxService/ListDead": _G,
    "OutboxService/Requeue": _G,
    # Secrets: data leaves the wallet only to the gateway (HTTP, behind its own auth), to the
    # execution service (`/api/postgres/execute` with a credential) and to a worker's bound Resolve.
    "SecretsService/PutCredential": _G,
    "SecretsService/ListCredentials": _G,
    "SecretsService/GetCredential": _G,
    f"SecretsService/GetCredential+{INCLUDE_DATA}": frozenset({GATEWAY, EXECUTION}),
    "SecretsService/DeleteCredential": _G,
    "SecretsService/SetKeychain": _G,
    "SecretsService/GetKeychain": _G,
    "SecretsService/DeleteKeychain": _G,
    "SecretsService/ListKeychain": _G,
    "SecretsService/Resolve": frozenset({WORKER}),
    "SecretsService/Rotate": _G,
    "SecretsService/KeyStatus": _G,
    "SecretsService/ListAudit": _G,
}

# RPC → what makes a request its privileged variant (unary requests only).
VARIANTS: Mapping[str, Callable[[Any], str | None]] = {
    "SecretsService/GetCredential": lambda request: INCLUDE_DATA if request.include_data else None,
}


def rpc_name(method: str) -> str:
    """`/noetl.v1.CatalogService/Register` → `CatalogService/Register` (other packages unchanged)."""
    return method[len(PACKAGE) :] if method.startswith(PACKAGE) else method


def is_open(method: str) -> bool:
    return method.startswith(OPEN_PREFIXES)


class Rule:
    """The callers of one RPC, and of its variant if it has one."""

    __slots__ = ("_callers", "_name", "_variant", "_variant_callers")

    def __init__(self, method: str, policy: Mapping[str, frozenset[str]] = POLICY) -> None:
        self._name = rpc_name(method)
        self._callers = policy.get(self._name, frozenset())
        self._variant = VARIANTS.get(self._name)
        self._variant_callers = (
            {v.partition("+")[2]: c for v, c in policy.items() if v.startswith(self._name + "+")}
            if self._variant is not None
            else {}
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def inspects_request(self) -> bool:
        return self._variant is not None

    def permits(self, caller: str, request: Any = None) -> bool:
        """A request of a variant is judged by the variant's entry alone (none: nobody)."""
        variant = self._variant(request) if self._variant is not None and request is not None else None
        if variant is None:
            return caller in self._callers
        return caller in self._variant_callers.get(variant, frozenset())

    def describe(self, request: Any = None) -> str:
        variant = self._variant(request) if self._variant is not None and request is not None else None
        return f"{self._name}({variant})" if variant else self._name
