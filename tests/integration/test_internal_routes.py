"""The internal API through the real gateway app over real gRPC (http-api.md §1.8, §12.1-§12.5).

The gateway runs in this process (ASGI transport) in front of the outbox servicer (without its
background publisher, so claims here are the only claims) and the events service, both on
ephemeral ports over a fresh database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx
import pytest
from starlette.routing import Route

from gateway_http.app import create_app
from gateway_http.clients import GatewayClients
from gateway_http.internal_gate import BAD_SCHEME, MISSING_HEADER, NOT_CONFIGURED, WRONG_TOKEN
from gateway_http.settings import GatewaySettings
from kernel.bus import event_subject
from kernel.grpc_server import GrpcHost
from kernel.mesh_guard import ServerAuth
from services.events.__main__ import assemble as assemble_events
from services.events.settings import Settings as EventsSettings
from tests.helpers.gateway import in_process_gateway
from tests.helpers.infra import NatsServer
from tests.helpers.nowhere import NOWHERE_ENV
from tests.helpers.outbox import MAX_ATTEMPTS, OutboxHarness, insert_rows, outbox_harness, statuses
from tests.helpers.services import basics

TOKEN = "s3rvice-account-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXECUTION_ID = 332000000000000001


@dataclass(frozen=True)
class Backends:
    outbox: OutboxHarness
    events_addr: str


@pytest.fixture(scope="module")
async def backends(module_dsn: str, nats_server: NatsServer) -> AsyncIterator[Backends]:
    async with AsyncExitStack() as stack:
        outbox = await stack.enter_async_context(outbox_harness(module_dsn, nats_server.url, "internal"))
        settings = EventsSettings(
            basics=basics(module_dsn),
            bus=outbox.bus,
            outbox_addr=outbox.address,
        )
        host = GrpcHost(
            "events",
            "127.0.0.1:0",
            await stack.enter_async_context(assemble_events(settings)),
            auth=ServerAuth.off(),
        )
        port = await host.start()
        stack.push_async_callback(host.stop)
        yield Backends(outbox, f"127.0.0.1:{port}")


def gateway_settings(backends: Backends, token: str | None) -> GatewaySettings:
    env = {
        **NOWHERE_ENV,
        "NOETL_EVENTS_ADDRS": backends.events_addr,
        "NOETL_OUTBOX_ADDRS": backends.outbox.address,
        "NOETL_MESH_AUTH": "off",
    }
    if token is not None:
        env["NOETL_INTERNAL_API_TOKEN"] = token
    return GatewaySettings.load(env)


async def gateway(settings: GatewaySettings) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_gateway(settings) as client:
        yield client


@pytest.fixture
async def http(backends: Backends) -> AsyncIterator[httpx.AsyncClient]:
    # A mounted secret's trailing newline is not part of the token.
    async for client in gateway(gateway_settings(backends, f"  {TOKEN}\n")):
        yield client


@pytest.fixture(autouse=True)
async def empty_outbox(backends: Backends) -> None:
    await backends.outbox.db.execute("DELETE FROM noetl.outbox")


@pytest.fixture(scope="module")
async def internal_routes(backends: Backends) -> list[tuple[str, str]]:
    """(method, path) of every gated route the app serves, under both prefixes."""
    settings = gateway_settings(backends, TOKEN)
    clients = GatewayClients.connect(settings)
    try:
        app = create_app(clients, settings)
    finally:
        await clients.close()
    return sorted(
        (method, route.path)
        for route in app.routes
        if isinstance(route, Route) and "/internal/" in route.path
        for method in (route.methods or set()) - {"HEAD"}
    )


def test_the_inventory_covers_the_outbox_and_projection_routes(
    internal_routes: list[tuple[str, str]],
) -> None:
    paths = {path for _, path in internal_routes}
    for path in (
        "/internal/outbox/claim",
        "/internal/outbox/mark-published",
        "/internal/outbox/mark-failed",
        "/internal/outbox/pending-count",
        "/internal/outbox/dead",
        "/internal/outbox/dead/requeue",
        "/internal/events/project",
    ):
        assert {f"/api{path}", f"/noetl{path}"} <= paths


@pytest.mark.parametrize("token", [None, "", " \n\t "])
async def test_without_a_configured_token_every_internal_route_is_503(
    backends: Backends, internal_routes: list[tuple[str, str]], token: str | None
) -> None:
    async for client in gateway(gateway_settings(backends, token)):
        for method, path in internal_routes:
            response = await client.request(method, path, headers=AUTH, content=b"{")
            assert (response.status_code, response.json()) == (503, {"detail": NOT_CONFIGURED}), (
                method,
                path,
            )


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, MISSING_HEADER),
        ({"Authorization": ""}, MISSING_HEADER),
        ({"Authorization": f"Basic {TOKEN}"}, BAD_SCHEME),
        ({"Authorization": "Bearer"}, BAD_SCHEME),
        ({"Authorization": "Bearer "}, BAD_SCHEME),
        ({"Authorization": f"Token {TOKEN}"}, BAD_SCHEME),
        ({"Authorization": "Bearer wrong"}, WRONG_TOKEN),
        ({"Authorization": f"Bearer {TOKEN}x"}, WRONG_TOKEN),
        ({"Authorization": f"Bearer  {TOKEN}"}, WRONG_TOKEN),
        ({b"Authorization": "Bearer t\u00f6ken".encode("latin-1")}, WRONG_TOKEN),
    ],
)
async def test_a_missing_or_wrong_token_is_403_before_the_body_is_read(
    http: httpx.AsyncClient,
    internal_routes: list[tuple[str, str]],
    headers: dict[str, str] | dict[bytes, bytes],
    detail: str,
) -> None:
    for method, path in internal_routes:
        # A malformed body: the gate answers first.
        response = await http.request(method, path, headers=headers, content=b"{not json")
        assert (response.status_code, response.json()) == (403, {"detail": detail}), (method, path)


VALID_REQUESTS: list[tuple[str, str, dict[str, object] | None]] = [
    ("POST", "/internal/outbox/claim", {"limit": 1}),
    ("POST", "/internal/outbox/mark-published", {"outbox_ids": [1]}),
    ("POST", "/internal/outbox/mark-failed", {"outbox_id": 1, "error": "e"}),
    ("GET", "/internal/outbox/pending-count", None),
    ("GET", "/internal/outbox/dead", None),
    ("POST", "/internal/outbox/dead/requeue", {"all": True}),
    ("POST", "/internal/events/project", {"events": [{"event_id": 333000000000000900, "execution_id": 1}]}),
]


@pytest.mark.parametrize("prefix", ["/api", "/noetl"])
@pytest.mark.parametrize(("method", "path", "body"), VALID_REQUESTS)
async def test_the_right_token_reaches_every_outbox_and_projection_route(
    http: httpx.AsyncClient, prefix: str, method: str, path: str, body: dict[str, object] | None
) -> None:
    response = await http.request(method, prefix + path, headers=AUTH, json=body)
    assert response.status_code == 200, response.text


async def test_the_scheme_is_case_insensitive(http: httpx.AsyncClient) -> None:
    for scheme in ("bearer", "BEARER", "Bearer"):
        response = await http.get(
            "/api/internal/outbox/pending-count", headers={"Authorization": f"{scheme} {TOKEN}"}
        )
        assert (response.status_code, response.content) == (200, b'{"pending":0}')


async def rows(
    backends: Backends, event_ids: list[int], *, status: str = "PENDING", attempts: int = 0
) -> list[int]:
    return await insert_rows(
        backends.outbox.db,
        EXECUTION_ID,
        event_subject(EXECUTION_ID, 1),
        event_ids,
        status=status,
        attempts=attempts,
        locked_ago_seconds=None if status == "PENDING" else 1,
    )


async def test_the_outbox_routes_answer_the_documented_shapes(
    http: httpx.AsyncClient, backends: Backends
) -> None:
    ids = await rows(backends, [700000000000000000 + i for i in range(3)])
    pending = await http.get("/noetl/internal/outbox/pending-count", headers=AUTH)
    assert pending.content == b'{"pending":3}'

    claimed = await http.post(
        "/api/internal/outbox/claim", headers=AUTH, json={"limit": 2}, params={"limit": 1}
    )
    body = claimed.json()
    assert claimed.status_code == 200
    assert list(body) == ["rows", "claimed"]
    assert body["claimed"] == 2
    first = body["rows"][0]
    assert list(first) == [
        "outbox_id",
        "event_id",
        "execution_id",
        "subject",
        "payload",
        "payload_codec",
        "attempts",
    ]
    assert (first["outbox_id"], first["event_id"], first["execution_id"]) == (
        ids[0],
        700000000000000000,
        EXECUTION_ID,
    )
    assert (first["subject"], first["payload_codec"], first["attempts"]) == (
        event_subject(EXECUTION_ID, 1),
        "json",
        1,
    )
    assert first["payload"]["event_id"] == 700000000000000000

    marked = await http.post(
        "/api/internal/outbox/mark-published", headers=AUTH, json={"outbox_ids": [ids[0]]}
    )
    assert marked.content == b'{"marked":1}'
    again = await http.post(
        "/api/internal/outbox/mark-published", headers=AUTH, json={"outbox_ids": [str(ids[0])]}
    )
    assert again.content == b'{"marked":1}'  # idempotent: rows affected
    failed = await http.post(
        "/api/internal/outbox/mark-failed",
        headers=AUTH,
        json={"outbox_id": ids[1], "error": "nats down", "attempts": 3},
    )
    assert failed.content == b'{"marked":true,"available_at_in":4}'
    defaults = await http.post(
        "/api/internal/outbox/mark-failed", headers=AUTH, json={"outbox_id": 1, "error": "x"}
    )
    assert defaults.content == b'{"marked":true,"available_at_in":1}'
    assert await statuses(backends.outbox.db, ids) == {
        ids[0]: ("PUBLISHED", 1),
        ids[1]: ("FAILED", 1),
        ids[2]: ("PENDING", 0),
    }


@pytest.mark.parametrize(("limit", "claimed"), [(5000, 3), (0, 1), (-7, 1), ("2", 2)])
async def test_claim_limits_are_clamped(
    http: httpx.AsyncClient, backends: Backends, limit: object, claimed: int
) -> None:
    await rows(backends, [710000000000000000 + i for i in range(3)])
    response = await http.post("/api/internal/outbox/claim", headers=AUTH, json={"limit": limit})
    assert (response.status_code, response.json()["claimed"]) == (200, claimed)


async def test_an_empty_claim_body_claims_the_default(http: httpx.AsyncClient, backends: Backends) -> None:
    await rows(backends, [720000000000000000 + i for i in range(150)])
    response = await http.post("/api/internal/outbox/claim", headers=AUTH)
    assert response.json()["claimed"] == 100


@pytest.mark.parametrize(
    ("path", "body", "item"),
    [
        (
            "/api/internal/outbox/mark-published",
            {"outbox_ids": []},
            {
                "type": "too_short",
                "loc": ["body", "outbox_ids"],
                "msg": "List should have at least 1 item after validation, not 0",
                "input": [],
                "ctx": {"field_type": "List", "min_length": 1, "actual_length": 0},
            },
        ),
        (
            "/api/internal/outbox/mark-published",
            {"outbox_ids": [1, "x"]},
            {
                "type": "int_parsing",
                "loc": ["body", "outbox_ids", 1],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "input": "x",
            },
        ),
        (
            "/api/internal/outbox/mark-failed",
            {"outbox_id": 1, "error": ""},
            {
                "type": "string_too_short",
                "loc": ["body", "error"],
                "msg": "String should have at least 1 character",
                "input": "",
                "ctx": {"min_length": 1},
            },
        ),
        (
            "/api/internal/outbox/mark-failed",
            {"outbox_id": 1, "error": "e", "attempts": 0},
            {
                "type": "greater_than_equal",
                "loc": ["body", "attempts"],
                "msg": "Input should be greater than or equal to 1",
                "input": 0,
                "ctx": {"ge": 1},
            },
        ),
        (
            "/api/internal/events/project",
            {"events": []},
            {
                "type": "too_short",
                "loc": ["body", "events"],
                "msg": "List should have at least 1 item after validation, not 0",
                "input": [],
                "ctx": {"field_type": "List", "min_length": 1, "actual_length": 0},
            },
        ),
        (
            "/api/internal/events/project",
            {"events": [{"event_type": "x"}]},
            {
                "type": "missing",
                "loc": ["body", "events", 0, "event_id"],
                "msg": "Field required",
                "input": {"event_type": "x"},
            },
        ),
        (
            "/api/internal/events/project",
            {"events": [{"event_id": 1, "timestamp": "yesterday"}]},
            {
                "type": "datetime_parsing",
                "loc": ["body", "events", 0, "timestamp"],
                "msg": "Input should be a valid datetime, unable to parse string as a datetime",
                "input": "yesterday",
            },
        ),
    ],
)
async def test_invalid_bodies_are_422_in_the_fastapi_form(
    http: httpx.AsyncClient, path: str, body: object, item: dict[str, object]
) -> None:
    response = await http.post(path, headers=AUTH, json=body)
    assert (response.status_code, response.json()) == (422, {"detail": [item]})


async def test_dead_letters_are_listed_and_requeued(http: httpx.AsyncClient, backends: Backends) -> None:
    dead = await rows(
        backends, [730000000000000000 + i for i in range(3)], status="DEAD", attempts=MAX_ATTEMPTS
    )
    listed = await http.get("/api/internal/outbox/dead", headers=AUTH, params={"limit": 2})
    body = listed.json()
    assert listed.status_code == 200
    assert list(body) == ["rows", "dead", "next_after"]
    assert (body["dead"], body["next_after"]) == (3, dead[1])
    assert [r["outbox_id"] for r in body["rows"]] == dead[:2]
    row = body["rows"][0]
    assert list(row) == [
        "outbox_id", "event_id", "execution_id", "subject", "attempts", "last_error", "created_at", "dead_at"
    ]  # fmt: skip
    assert (row["event_id"], row["attempts"], row["last_error"]) == (730000000000000000, MAX_ATTEMPTS, "")
    assert row["dead_at"].endswith("Z")
    rest = await http.get("/api/internal/outbox/dead", headers=AUTH, params={"after": dead[1]})
    assert [r["outbox_id"] for r in rest.json()["rows"]] == dead[2:]
    assert rest.json()["next_after"] is None

    both = await http.post(
        "/api/internal/outbox/dead/requeue", headers=AUTH, json={"all": True, "outbox_ids": [1]}
    )
    assert both.status_code == 422
    one = await http.post("/api/internal/outbox/dead/requeue", headers=AUTH, json={"outbox_ids": [dead[0]]})
    assert one.content == b'{"requeued":1}'
    every = await http.post("/api/internal/outbox/dead/requeue", headers=AUTH, json={"all": True})
    assert every.content == b'{"requeued":2}'
    assert await statuses(backends.outbox.db, dead) == {i: ("PENDING", 0) for i in dead}


async def project(http: httpx.AsyncClient, events: list[dict[str, object]]) -> httpx.Response:
    return await http.post("/api/internal/events/project", headers=AUTH, json={"events": events})


async def test_a_replayed_projection_inserts_nothing_and_says_so(
    http: httpx.AsyncClient, backends: Backends
) -> None:
    execution_id = 333000000000000001
    first, second, third, fourth = (333000000000000100 + i for i in range(4))
    batch: list[dict[str, object]] = [
        {
            "event_id": first,
            "execution_id": str(execution_id),
            "catalog_id": 7,
            "event_type": "playbook.initialized",
            "node_name": "demo",
            "status": "STARTED",
            "timestamp": "2026-08-19T15:02:20.5+02:00",
            "context": {"a": 1},
        },
        {
            "event_id": second,
            "execution_id": execution_id,
            "event_type": "step.enter",
            "payload": {"b": 2},
            "meta": {"k": "v"},
            "duration": "1.5",
            "unknown_key": "tolerated",
        },
        {
            "event_id": third,
            "execution_id": execution_id,
            "prev_event_id": first,
            "result": {"status": "ok", "context": {}},
            "error": "boom",
            "stack_trace": "Traceback ...",
            "trace_component": "worker",
        },
    ]
    answer = await project(http, batch)
    assert (answer.status_code, answer.content) == (200, b'{"projected":3,"duplicates":0}')
    replay = await project(http, batch)
    assert (replay.status_code, replay.content) == (200, b'{"projected":0,"duplicates":3}')
    overlap = await project(http, [batch[2], {"event_id": fourth, "execution_id": execution_id}, batch[2]])
    assert overlap.content == b'{"projected":1,"duplicates":2}'

    stored = {
        r["event_id"]: r
        for r in await backends.outbox.db.fetch(
            "SELECT event_id, prev_event_id, catalog_id, created_at, context, result, meta, duration, error, "
            "stack_trace, trace_component FROM noetl.event WHERE execution_id = $1",
            execution_id,
        )
    }
    assert sorted(stored) == [first, second, third, fourth]
    # No head yet, then linked to the newest event; an explicit prev_event_id wins.
    assert [stored[e]["prev_event_id"] for e in (first, second, third, fourth)] == [None, first, first, third]
    assert str(stored[first]["created_at"]) == "2026-08-19 13:02:20.500000"
    assert (stored[first]["catalog_id"], stored[second]["catalog_id"]) == (7, 0)
    assert (stored[first]["context"], stored[second]["context"]) == ('{"a": 1}', '{"b": 2}')
    assert (stored[second]["meta"], stored[second]["duration"]) == ('{"k": "v"}', 1.5)
    assert (stored[third]["error"], stored[third]["trace_component"]) == ("boom", '"worker"')
    # Projected events came from the stream: nothing goes back out through the outbox.
    assert (
        await backends.outbox.db.fetchval(
            "SELECT count(*) FROM noetl.outbox WHERE execution_id = $1", execution_id
        )
        == 0
    )


async def test_a_projection_the_database_refuses_is_500_and_writes_nothing(
    http: httpx.AsyncClient, backends: Backends
) -> None:
    execution_id = 333000000000000002
    answer = await project(
        http,
        [
            {"event_id": 333000000000000200, "execution_id": execution_id},
            {"event_id": 333000000000000201, "execution_id": execution_id, "result": {"no_status": True}},
        ],
    )
    assert answer.status_code == 500
    assert answer.json()["detail"].startswith("events/project failed: ")
    assert "chk_event_result_shape" in answer.json()["detail"]
    assert (
        await backends.outbox.db.fetchval(
            "SELECT count(*) FROM noetl.event WHERE execution_id = $1", execution_id
        )
        == 0
    )
