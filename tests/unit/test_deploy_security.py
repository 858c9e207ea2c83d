"""The chart's NetworkPolicies let each service be reached by exactly the callers the mesh policy
lists for its RPCs (kernel/mesh_policy.py), so the two walls never disagree."""

from __future__ import annotations

import re
from pathlib import Path

from kernel.mesh_policy import LAUNCHER, POLICY
from tests.unit.test_deploy_routes import SERVED_BY

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "helm" / "noetl-mesh" / "templates" / "networkpolicies.yaml"


def _chart_callers() -> dict[str, set[str]]:
    text = TEMPLATE.read_text()
    pairs = re.findall(r'"(\w+)" \(list ((?:"\w+" ?)+)\)', text)
    return {service: set(re.findall(r'"(\w+)"', callers)) for service, callers in pairs}


def _policy_callers() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for rpc, callers in POLICY.items():
        process = SERVED_BY[rpc.partition("/")[0]]
        # The launcher is `noetl-mesh run` on a developer's machine, never a pod of the chart.
        found.setdefault(process, set()).update(callers - {LAUNCHER})
    return found


def test_network_policies_match_the_mesh_policy() -> None:
    assert _chart_callers() == _policy_callers()
