"""deploy/envoy: the config loads into Envoy's own bootstrap proto (xds-protos, generated from
envoyproxy/data-plane-api), routes every per-shard call by `x-noetl-shard` to that shard's pod on
the port the chart gives the process, and its Kubernetes objects pass the Kubernetes schemas.

Not checked here: Envoy's own semantic validation (it would need the envoy binary) and traffic
through a running Envoy.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401 (registers the Any type)
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401 (registers the Any type)
from google.protobuf import json_format

from kernel.grpc_client import SHARD_HEADER
from tests.helpers.shared import REPO

ENVOY = REPO / "deploy" / "envoy"
VALUES = yaml.safe_load((REPO / "deploy" / "helm" / "noetl-mesh" / "values.yaml").read_text())
SHARDS = int(VALUES["shards"]["count"])
# Every service a client reaches through a per-shard channel, and the shard process serving it.
SHARDED = {
    "EventService": "events",
    "OutboxService": "outbox",
    "ExecutionService": "execution",
    "CommandService": "execution",
    "VarsService": "execution",
    "ResultService": "execution",
}


def bootstrap() -> bootstrap_pb2.Bootstrap:
    document = yaml.safe_load((ENVOY / "envoy.yaml").read_text())
    return json_format.ParseDict(document, bootstrap_pb2.Bootstrap())


def grpc_routes(config: bootstrap_pb2.Bootstrap) -> list[Any]:
    (listener,) = [item for item in config.static_resources.listeners if item.name == "grpc_mesh"]
    manager = http_connection_manager_pb2.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(manager)
    (host,) = manager.route_config.virtual_hosts
    return list(host.routes)


def test_the_config_is_a_valid_envoy_bootstrap_and_every_route_has_its_cluster() -> None:
    config = bootstrap()
    clusters = {cluster.name for cluster in config.static_resources.clusters}
    assert {route.route.cluster for route in grpc_routes(config)} <= clusters


def test_each_shard_call_goes_to_its_own_shard_pod_on_the_charts_port() -> None:
    config = bootstrap()
    endpoints = {
        cluster.name: [
            (e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value)
            for group in cluster.load_assignment.endpoints
            for e in group.lb_endpoints
        ]
        for cluster in config.static_resources.clusters
    }
    routed: dict[tuple[str, str], str] = {}
    for route in grpc_routes(config):
        for header in route.match.headers:
            assert header.name == SHARD_HEADER
            routed[(route.match.prefix, header.string_match.exact)] = route.route.cluster
    for service, process in SHARDED.items():
        for shard in range(SHARDS):
            cluster = routed[(f"/noetl.v1.{service}/", str(shard))]
            assert endpoints[cluster] == [(f"noetl-shard-{shard}.noetl-shard", VALUES["ports"][process])]


def test_the_envoy_objects_pass_the_kubernetes_schemas() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (its built-in kustomize renders deploy/envoy) is not installed")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(ENVOY)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    objects = [item for item in yaml.safe_load_all(rendered) if item]
    assert {item["kind"] for item in objects} == {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"}
    for item in objects:
        kubernetes_validate.validate(item, kubernetes_validate.latest_version(), strict=True)
