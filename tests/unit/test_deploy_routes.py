"""The Envoy config routes every gRPC service the protos declare, to the process that serves it.

A service added to `protos/` without a route would work on one machine (direct addresses) and
fail behind Envoy, so the two are checked against each other.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
# Which deployment serves each service (the process whose `assemble` registers it).
SERVED_BY = {
    "CatalogService": "catalog",
    "EventService": "events",
    "OutboxService": "outbox",
    "SecretsService": "secrets",
    "ExecutionService": "execution",
    "CommandService": "execution",
    "PoolService": "execution",
    "VarsService": "execution",
    "ResultService": "execution",
    "AdminService": "execution",
    "WorkBindingService": "execution",
}


def _declared_services() -> set[str]:
    names: set[str] = set()
    for proto in (REPO / "protos" / "noetl" / "v1").glob("*.proto"):
        names |= set(re.findall(r"^service (\w+) \{", proto.read_text(), flags=re.MULTILINE))
    return names


def _envoy_routes() -> dict[str, set[str]]:
    """gRPC route prefix → the processes its clusters reach, from the mesh listener of
    deploy/envoy/envoy.yaml (a per-shard cluster `execution_2` or `execution_any` is `execution`)."""
    config = yaml.safe_load((REPO / "deploy" / "envoy" / "envoy.yaml").read_text())
    routes: dict[str, set[str]] = {}
    for listener in config["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for flt in chain["filters"]:
                for host in flt["typed_config"]["route_config"]["virtual_hosts"]:
                    for route in host["routes"]:
                        process = re.sub(r"_(\d+|any)$", "", route["route"]["cluster"])
                        routes.setdefault(route["match"]["prefix"], set()).add(process)
    return routes


def _registered_services() -> dict[str, str]:
    """service → the process whose `__main__` adds its servicer to the server."""
    found: dict[str, str] = {}
    for main in (REPO / "services").glob("*/__main__.py"):
        for service in re.findall(r"add_(\w+)Servicer_to_server", main.read_text()):
            found[service] = main.parent.name
    return found


def test_every_declared_service_is_served_where_this_test_says() -> None:
    assert _declared_services() == set(SERVED_BY)
    assert _registered_services() == SERVED_BY


def test_envoy_routes_every_service_to_its_process() -> None:
    routes = _envoy_routes()
    wrong = {
        service: routes.get(f"/noetl.v1.{service}/")
        for service, cluster in SERVED_BY.items()
        if routes.get(f"/noetl.v1.{service}/") != {cluster}
    }
    assert not wrong, f"services without their Envoy route (got cluster): {wrong}"
