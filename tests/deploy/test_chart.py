"""deploy/helm/noetl-mesh rendered by `helm template` and every object checked against the
Kubernetes schemas (kubernetes-validate, strict), plus what issue #15 asks of the chart.

`helm` is not installable on this project's machines (no registry the machine reaches ships it),
so here these tests skip; they run wherever `helm` is on PATH. deploy/README.md says so.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.helpers.shared import REPO

CHART = REPO / "deploy" / "helm" / "noetl-mesh"
COMPONENTS = {"shard", "catalog", "secrets", "gateway", "worker"}
# Custom resources the Kubernetes schemas do not describe.
CUSTOM_KINDS = {"ScaledObject"}


def render(*settings: str) -> list[dict[str, Any]]:
    helm = shutil.which("helm")
    if helm is None:
        pytest.skip("helm is not installed: the chart cannot be rendered here")
    args = [helm, "template", "noetl", str(CHART)]
    for setting in settings:
        args += ["--set", setting]
    rendered = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout
    objects = [item for item in yaml.safe_load_all(rendered) if item]
    for item in objects:
        if item["kind"] not in CUSTOM_KINDS:
            kubernetes_validate.validate(item, kubernetes_validate.latest_version(), strict=True)
    return objects


def of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {item["metadata"]["name"]: item for item in objects if item["kind"] == kind}


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


def test_every_component_has_a_disruption_budget_and_a_network_policy() -> None:
    objects = render()
    budgets = of_kind(objects, "PodDisruptionBudget")
    assert {name.removeprefix("noetl-") for name in budgets} == COMPONENTS
    policies = of_kind(objects, "NetworkPolicy")
    assert {name.removeprefix("noetl-") for name in policies} == COMPONENTS
    callers = {
        selector["podSelector"]["matchLabels"]["app"]
        for selector in policies["noetl-catalog"]["spec"]["ingress"][0]["from"]
    }
    # The mesh policy's callers of the catalog (GetResource: gateway, execution, secrets), by pod.
    assert callers == {"noetl-gateway", "noetl-shard", "noetl-secrets", "noetl-envoy"}


@pytest.mark.parametrize(("kind", "expected"), [("keda", "ScaledObject"), ("hpa", "HorizontalPodAutoscaler")])
def test_workers_scale_on_the_outbox_backlog(kind: str, expected: str) -> None:
    objects = render(f"worker.autoscaling.kind={kind}")
    (scaler,) = of_kind(objects, expected).values()
    assert "noetl_outbox_pending" in yaml.safe_dump(scaler)
    assert "replicas" not in of_kind(objects, "Deployment")["noetl-worker"]["spec"]
