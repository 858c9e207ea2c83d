"""The playbooks the benchmarks register, and the HTTP calls that register and start them."""

from __future__ import annotations

from typing import Any

import orjson

from bench.http import Poster

CHAIN_STEPS = ["start", *(f"s{i}" for i in range(1, 9)), "end"]  # 10 steps

# start (noop) → end (noop). Started with an execution pool no worker consumes, so `start`'s command
# stays issued and the execution RUNNING while the ingest benchmark posts worker events into it.
INGEST_TARGET = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: ingest_target, path: bench/ingest_target}
workflow:
  - step: start
    tool: {kind: noop}
    next:
      spec: {mode: exclusive}
      arcs: [{step: end}]
  - step: end
    tool: {kind: noop}
"""


def chain(kind: str) -> tuple[str, str]:
    """(path, YAML) of the linear 10-step chain start → s1 … s8 → end, every step of `kind`."""
    path = f"bench/chain_{kind}"
    lines = [
        "apiVersion: noetl.io/v2",
        "kind: Playbook",
        f"metadata: {{name: chain_{kind}, path: {path}}}",
        "workflow:",
    ]
    for index, name in enumerate(CHAIN_STEPS):
        lines.append(f"  - step: {name}")
        if kind == "noop":
            lines.append("    tool: {kind: noop}")
        elif kind == "python":
            lines += [
                "    tool:",
                "      kind: python",
                "      code: |",
                f'        result = {{"i": {index}}}',
            ]
        else:
            raise ValueError(f"unknown chain kind {kind}")
        if index + 1 < len(CHAIN_STEPS):
            lines += [
                "    next:",
                "      spec: {mode: exclusive}",
                f"      arcs: [{{step: {CHAIN_STEPS[index + 1]}}}]",
            ]
    return path, "\n".join(lines) + "\n"


class SetupError(Exception):
    pass


async def call(poster: Poster, method: str, path: str, body: object | None = None) -> dict[str, Any]:
    if method == "GET":
        status, raw = await poster.get(path)
    else:
        status, raw = await poster.post(path, orjson.dumps(body))
    if status != 200:
        raise SetupError(f"{method} {path} -> {status}: {raw[:300]!r}")
    answer: dict[str, Any] = orjson.loads(raw)
    return answer


async def register(poster: Poster, content: str) -> None:
    await call(poster, "POST", "/api/catalog/register", {"content": content})


async def execute(poster: Poster, path: str, **extra: object) -> str:
    return str((await call(poster, "POST", "/api/execute", {"path": path, **extra}))["execution_id"])
