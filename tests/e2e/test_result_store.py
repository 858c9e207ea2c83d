"""A step result over the worker's inline budget goes to the result store, and later steps read it
as if it were inline (dsl.md §9.12, §11.1; http-api.md §10), on the whole mesh."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import orjson
import pytest

from tests.helpers.eventlog import of, one
from tests.helpers.invariants import run_playbook
from tests.helpers.mesh import ProcessMesh, database, execution_database, mesh_run, register, step_result

pytestmark = pytest.mark.e2e

# About 300 KB of JSON: over the default inline budget of 100 KB (NOETL_WORKER_INLINE_RESULT_BYTES).
BIG = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: big_result, path: tests/results/big_result}
workflow:
  - step: start
    tool: {kind: noop}
    next: big
  - step: big
    tool:
      kind: python
      code: |
        print("made the items")
        items = [{"index": i, "name": "item-" + str(i), "tags": ["a", "b"], "value": i * 2} for i in range(5000)]
        result = {"items": items, "label": "big"}
    set:
      ctx.total: "{{ output.items | length }}"
    next:
      spec: {mode: exclusive}
      arcs:
        - {step: use, when: "{{ big.items | length == 5000 }}"}
        - {step: wrong}
  - step: use
    tool:
      kind: python
      input:
        count: "{{ big.items | length }}"
        last: "{{ big.items[4999].value }}"
        label: "{{ big.label }}"
        total: "{{ total }}"
        ref: "{{ big._ref }}"
        store: "{{ big._store }}"
        uri: "{{ big._uri }}"
        preview: "{{ big._preview }}"
      code: |
        result = {"count": count, "last": last, "label": label, "total": total, "ref": ref,
                  "store": store, "uri": uri, "preview_items": len(preview["items"])}
    next: each
  - step: each
    loop: {in: "{{ big.items[:3] }}", iterator: item}
    tool: {kind: python, input: {name: "{{ item.name }}"}, code: "result = {'name': name}"}
    next: end
  - step: wrong
    tool: {kind: noop}
  - step: end
    tool: {kind: noop}
"""

ITEMS = [{"index": i, "name": f"item-{i}", "tags": ["a", "b"], "value": i * 2} for i in range(5000)]


async def test_a_large_result_is_stored_by_reference_and_read_as_if_inline(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    run = await run_playbook(gateway, process_mesh.pg_dsn, BIG, seconds=60.0)

    assert run.status == "COMPLETED", run.detail
    used = step_result(run.events, "use")
    ref = used["ref"]
    assert ref.startswith(f"noetl://execution/{run.execution_id}/result/big/")
    assert {k: v for k, v in used.items() if k not in ("ref", "uri")} == {
        "count": 5000,
        "last": 9998,
        "label": "big",
        "total": 5000,
        "store": "db",
        "preview_items": 5,
    }
    assert used["uri"].endswith(f"/api/result/resolve?ref={quote(ref, safe='')}")
    assert [step_result([e], "each")["name"] for e in of_api(run.events, "call.done", "each")] == [
        "item-0",
        "item-1",
        "item-2",
    ]
    assert [e.node_name for e in of(run.log, "step.skipped")] == ["wrong"]

    # The log holds the reference, not the data: call.done and step.exit alike.
    compact = orjson.dumps({"items": ITEMS, "label": "big"})
    for kind in ("call.done", "step.exit"):
        envelope = one(run.log, kind, "big").context["result"]
        reference = envelope["reference"]
        assert (reference["ref"], reference["store"], reference["scope"]) == (ref, "db", "execution")
        assert (reference["bytes"], reference["sha256"]) == (
            len(compact),
            f"sha256:{hashlib.sha256(compact).hexdigest()}",
        )
        assert (
            reference["preview"]["items"][0] == {**ITEMS[0], "tags": "..."}
            and len(reference["preview"]["items"]) == 5
        )
        assert "data" not in envelope["context"] and envelope["context"]["stdout"] == "made the items\n"
    async with database(await execution_database(process_mesh.pg_dsn, run.execution_id)) as conn:
        stored_size = await conn.fetchval(
            "SELECT octet_length(result::text) FROM noetl.event "
            "WHERE execution_id = $1 AND event_type = 'call.done' AND node_name = 'big'",
            int(run.execution_id),
        )
    assert stored_size < 5_000

    # The value itself, through the gateway, at the address `_uri` names.
    resolved = await gateway.get(urlsplit(used["uri"])._replace(scheme="", netloc="").geturl())
    assert resolved.status_code == 200
    assert resolved.json() == {"items": ITEMS, "label": "big"}


def of_api(events: list[dict[str, object]], event_type: str, step: str) -> list[dict[str, object]]:
    return [e for e in events if e["event_type"] == event_type and e["node_name"] == step]


# The child returns a ~300 KB result through `return_step`; the parent's step gets the data itself.
CHILD = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: big_child, path: tests/results/big_child}
workflow:
  - step: start
    tool:
      kind: python
      code: |
        result = {"items": [{"index": i, "name": "item-" + str(i), "tags": ["a", "b"], "value": i * 2}
                            for i in range(5000)], "label": "big"}
"""

PARENT = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: big_parent, path: tests/results/big_parent}
workflow:
  - step: start
    tool: {kind: playbook, path: tests/results/big_child, return_step: start}
    next: count
  - step: count
    tool:
      kind: python
      input: {n: "{{ start.items | length }}", label: "{{ start.label }}", ref: "{{ start._ref }}"}
      code: |
        result = {"n": n, "label": label, "parent_stored": ref.startswith("noetl://")}
"""


async def test_a_child_result_kept_in_the_store_is_returned_to_the_parent_as_data(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    await register(gateway, CHILD)
    run = await run_playbook(gateway, process_mesh.pg_dsn, PARENT, seconds=90.0)

    assert run.status == "COMPLETED", run.detail
    # The parent's step result is the child's data; being large again, it is stored again.
    assert step_result(run.events, "count") == {"n": 5000, "label": "big", "parent_stored": True}


async def test_noetl_mesh_run_prints_a_last_result_kept_in_the_store(
    process_mesh: ProcessMesh, tmp_path: Path
) -> None:
    file = tmp_path / "big_last.yaml"
    file.write_text(CHILD.replace("big_child", "big_last"))

    result = await mesh_run(process_mesh, file)

    assert result.returncode == 0, result.describe()
    assert json.loads(result.stdout) == {"items": ITEMS, "label": "big"}


async def test_a_64_mib_value_is_stored_and_read_back(gateway: httpx.AsyncClient) -> None:
    """http-api.md §1.1: `PUT /api/result/{id}` takes at least 64 MiB; the value reads back whole
    (Postgres returns jsonb text with spaces, so the way back is larger than the way in)."""
    # Text with spaces: a long run of base64-like characters would read as a secret (data-model §9.10).
    rows = [{"i": i, "s": "word " * 11} for i in range(64 * 1024 * 1024 // 74)]
    body = orjson.dumps({"name": "huge", "data": rows})
    assert len(body) >= 64 * 1024 * 1024

    stored = await gateway.put(
        "/api/result/612400000000000001",
        content=body,
        headers={"content-type": "application/json"},
        timeout=120,
    )
    assert stored.status_code == 200, stored.text[:300]
    resolved = await gateway.get("/api/result/resolve", params={"ref": stored.json()["ref"]}, timeout=120)
    assert resolved.status_code == 200, resolved.text[:300]
    assert orjson.loads(resolved.content) == rows
