"""Hostile input against the running mesh: every case answers its documented 4xx naming the problem,
every service is still up after each one, and no service's memory grows past `RSS_GROWTH_BOUND`.

Sizes are just over each documented limit (README, Configuration), not the 100 MB of the report
that found these, so the whole suite stays within about a minute. The table of cases is the one
in docs/decisions.md ("Hostile input").
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from gateway_http.body_limits import MIB
from kernel.jsonutil import MAX_NESTING_DEPTH
from services.catalog.registry import MAX_PATH_LENGTH
from services.catalog.yaml_guard import MAX_NODES
from tests.helpers.invariants import finish
from tests.helpers.mesh import ProcessMesh, database, execute, register
from tests.helpers.playbooks import noop_chain
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.e2e

# How much any one service may grow over the whole suite: it sends ~140 MB of refused bodies, and a
# service that kept (or expanded) one of them would pass this at once.
RSS_GROWTH_BOUND = 96 * MIB
# Every refusal is answered in bounded time (a YAML bomb without expanding it); generous, because
# the two cores are shared (idle, the slowest case takes well under a second).
BOMB_SECONDS = 10.0
TARGET = "tests/abuse/target"
JSON = {"content-type": "application/json"}

ROUTES = {
    "register": "/api/catalog/register",
    "execute": "/api/execute",
    "events": "/api/events",
    "events/batch": "/api/events/batch",
    "credentials": "/api/credentials",
}


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    body: Callable[[], bytes]
    status: int
    says: str  # a part of the answer's detail that names the problem
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))


def laughs(levels: int) -> bytes:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    head = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: bomb, path: tests/abuse/bomb}\n"
    return _register(head + "\n".join(lines))


def _register(content: str) -> bytes:
    return json.dumps({"content": content}).encode()


def playbook_at(path: str) -> bytes:
    return _register(
        noop_chain("tests/abuse/x", ("start",)).replace('path: "tests/abuse/x"', f"path: {path!r}")
    )


def padded(prefix: bytes, size: int, suffix: bytes) -> bytes:
    return prefix + b"a" * (size - len(prefix) - len(suffix)) + suffix


DEEP = b"[" * 10_000 + b"]" * 10_000
CASES: list[Case] = [
    *(
        Case(f"nesting 10,000 deep: {r}", p, lambda: DEEP, 422, "nested deeper than")
        for r, p in ROUTES.items()
    ),
    *(
        Case(f"lone surrogate: {r}", p, lambda: b'{"x": "\\ud800"}', 422, "lone surrogate")
        for r, p in ROUTES.items()
    ),
    *(
        Case(f"invalid UTF-8: {r}", p, lambda: b'{"x": "\xff"}', 400, "not valid UTF-8")
        for r, p in ROUTES.items()
    ),
    *(
        Case(f"NUL in JSON: {r}", p, lambda: b'{"x": "a\\u0000"}', 422, "NUL character")
        for r, p in ROUTES.items()
    ),
    Case(
        "NUL in YAML (\\0 escape)",
        ROUTES["register"],
        lambda: _register('a: "x\\0y"\n'),
        400,
        "NUL character",
    ),
    Case(
        "over the limit: register (4 MiB + 1)",
        ROUTES["register"],
        lambda: padded(b'{"content": "', 4 * MIB + 1, b'"}'),
        413,
        f"at most {4 * MIB} bytes (NOETL_GATEWAY_MAX_PLAYBOOK_BYTES)",
    ),
    Case(
        "over the limit: execute (1 MiB + 1)",
        ROUTES["execute"],
        lambda: padded(b'{"path": "x", "payload": {"x": "', MIB + 1, b'"}}'),
        413,
        f"at most {MIB} bytes (NOETL_GATEWAY_MAX_BODY_BYTES)",
    ),
    Case(
        "over the limit: events (16 MiB + 1)",
        ROUTES["events"],
        lambda: padded(b'{"payload": {"x": "', 16 * MIB + 1, b'"}}'),
        413,
        f"at most {16 * MIB} bytes (NOETL_GATEWAY_MAX_EVENT_BYTES)",
    ),
    Case(
        "over the limit: events/batch (16 MiB + 1)",
        ROUTES["events/batch"],
        lambda: padded(b'{"events": [{"payload": {"x": "', 16 * MIB + 1, b'"}}]}'),
        413,
        "(NOETL_GATEWAY_MAX_EVENT_BYTES)",
    ),
    Case(
        "over the limit: credentials (1 MiB + 1)",
        ROUTES["credentials"],
        lambda: padded(b'{"name": "x", "type": "generic", "data": {"x": "', MIB + 1, b'"}}'),
        413,
        "(NOETL_GATEWAY_MAX_BODY_BYTES)",
    ),
    Case(
        "over the limit: result store (80 MiB + 1)",
        "/api/result/612400000000000001",
        lambda: padded(b'{"name": "x", "data": "', 80 * MIB + 1, b'"}'),
        413,
        f"at most {80 * MIB} bytes (NOETL_GATEWAY_MAX_RESULT_BYTES)",
        method="PUT",
    ),
    Case("YAML bomb 10^7 nodes", ROUTES["register"], lambda: laughs(7), 400, f"more than {MAX_NODES} nodes"),
    Case("YAML bomb 10^9 nodes", ROUTES["register"], lambda: laughs(9), 400, f"more than {MAX_NODES} nodes"),
    Case(
        "YAML 150,000 plain nodes",
        ROUTES["register"],
        lambda: _register("k: [" + ",".join(["1"] * 150_000) + "]\n"),
        400,
        f"more than {MAX_NODES} nodes",
    ),
    Case(
        "YAML nested past the limit",
        ROUTES["register"],
        lambda: _register("k: " + "[" * (MAX_NESTING_DEPTH + 1) + "]" * (MAX_NESTING_DEPTH + 1)),
        400,
        f"nests deeper than {MAX_NESTING_DEPTH} levels",
    ),
    Case("path traversal", ROUTES["register"], lambda: playbook_at("../../etc/passwd"), 400, "segment '..'"),
    Case("absolute path", ROUTES["register"], lambda: playbook_at("/etc/passwd"), 400, "must be relative"),
    Case("backslash path", ROUTES["register"], lambda: playbook_at("a\\b"), 400, "backslash"),
    Case("empty path segment", ROUTES["register"], lambda: playbook_at("a//b"), 400, "segment ''"),
    Case(
        "overlong path (5,000)",
        ROUTES["register"],
        lambda: playbook_at("p" * 5000),
        400,
        f"longer than {MAX_PATH_LENGTH}",
    ),
]


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def memory(mesh: ProcessMesh) -> dict[str, int]:
    return {p.name: rss(p.pid) for p in mesh.info.processes}


@pytest.fixture(scope="module")
def baseline(process_mesh: ProcessMesh) -> dict[str, int]:
    return memory(process_mesh)


@pytest.fixture
async def http(process_mesh: ProcessMesh) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=process_mesh.gateway_url, timeout=60.0) as client:
        yield client


async def assert_all_up(http: httpx.AsyncClient, mesh: ProcessMesh) -> None:
    for process in mesh.info.processes:
        os.kill(process.pid, 0)  # raises when it is gone
    assert (await http.get("/api/health")).status_code == 200
    assert (await http.post("/api/catalog/list", json={})).status_code == 200
    assert (await http.get("/api/credentials")).status_code == 200


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_a_hostile_request_is_refused_naming_the_problem(
    http: httpx.AsyncClient, process_mesh: ProcessMesh, baseline: dict[str, int], case: Case
) -> None:
    started = time.perf_counter()
    response = await http.request(case.method, case.path, content=case.body(), headers=case.headers)
    elapsed = time.perf_counter() - started

    assert response.status_code == case.status, response.text[:500]
    assert case.says in response.text, response.text[:500]
    assert elapsed < BOMB_SECONDS, f"{case.name} took {elapsed:.1f}s"
    print(f"\n| {case.name} | {case.method} {case.path} | {response.status_code} | {elapsed * 1000:.0f} ms |")
    await assert_all_up(http, process_mesh)


async def test_a_chunked_body_over_the_limit_is_cut_off_at_the_limit(
    http: httpx.AsyncClient, process_mesh: ProcessMesh, baseline: dict[str, int]
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(2 * MIB // 65536):
            yield b"a" * 65536

    response = await http.post(ROUTES["credentials"], content=chunks(), headers=JSON)
    assert response.status_code == 413
    assert "(NOETL_GATEWAY_MAX_BODY_BYTES)" in response.text
    await assert_all_up(http, process_mesh)


async def test_an_idempotency_key_replayed_with_another_body_is_a_conflict(
    http: httpx.AsyncClient, process_mesh: ProcessMesh, baseline: dict[str, int]
) -> None:
    await register(http, noop_chain(TARGET, ("start", "end")))
    run = await finish(http, process_mesh.pg_dsn, await execute(http, TARGET))
    key = {"Idempotency-Key": f"abuse-{run.execution_id}"}

    def body(note: str) -> dict[str, object]:
        return {
            "execution_id": run.execution_id,
            "events": [{"step": "end", "event_type": "x.note", "payload": {"n": note}}],
        }

    first = await http.post(ROUTES["events/batch"], json=body("one"), headers=key)
    same = await http.post(ROUTES["events/batch"], json=body("one"), headers=key)
    other = await http.post(ROUTES["events/batch"], json=body("two"), headers=key)

    assert (first.status_code, same.status_code, other.status_code) == (202, 202, 409)
    assert same.json()["duplicate"] is True and same.json()["event_ids"] == first.json()["event_ids"]
    assert f"Idempotency-Key '{key['Idempotency-Key']}'" in other.json()["detail"]


async def test_large_data_within_the_limits_goes_through_without_dead_letters(
    http: httpx.AsyncClient, process_mesh: ProcessMesh, baseline: dict[str, int]
) -> None:
    """A 3 MiB event (over NATS's 1 MiB) is stored and mirrored by reference; a 512 KiB workload runs."""
    await register(http, noop_chain(TARGET, ("start", "end")))
    run = await finish(http, process_mesh.pg_dsn, await execute(http, TARGET, {"blob": "b" * 512 * 1024}))
    assert run.status == "COMPLETED"
    big = {
        "execution_id": run.execution_id,
        "step": "end",
        "event_type": "x.big",
        "payload": {"x": "y" * 3 * MIB},
    }
    emitted = await http.post(ROUTES["events"], json=big)
    assert emitted.status_code == 200, emitted.text[:300]
    event_id = int(emitted.json()["event_id"])
    async with database(process_mesh.pg_dsn) as db:

        async def mirrored() -> str | None:
            status = await db.fetchval(
                "SELECT status FROM noetl.outbox WHERE event_id = $1 AND subject LIKE 'noetl.events.%'",
                event_id,
            )
            return status if status in ("PUBLISHED", "DEAD") else None

        assert await wait_for(mirrored, what="the big event's mirror published or dead") == "PUBLISHED"
    await assert_all_up(http, process_mesh)


async def test_no_service_grew_past_the_bound(
    http: httpx.AsyncClient, process_mesh: ProcessMesh, baseline: dict[str, int]
) -> None:
    await assert_all_up(http, process_mesh)
    after = memory(process_mesh)
    grown = {name: after[name] - baseline[name] for name in baseline}
    report = ", ".join(f"{n} {baseline[n] // MIB}→{after[n] // MIB} MiB" for n in baseline)
    print(f"RSS before→after: {report}")
    assert all(delta <= RSS_GROWTH_BOUND for delta in grown.values()), report
