"""Catalog delete, restore and the workload form against real Postgres and a real event log.

http-api.md §3.5: a version without execution history is removed, one referenced by events is
archived (no longer "latest", hidden from lists). The catalog learns about history only from
`EventService.CatalogUsage`, so these tests start a catalog service wired to the mesh's events
service (the mesh's own catalog is started before events exists) and create history by starting
real executions.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import asyncpg
import grpc
import pytest
from noetl.v1 import catalog_pb2, catalog_pb2_grpc, events_pb2, execution_pb2

from kernel.grpc_server import GrpcHost
from kernel.mesh_guard import ServerAuth
from services.catalog.__main__ import assemble as assemble_catalog
from services.catalog.settings import Settings as CatalogSettings
from tests.helpers.playbooks import noop_playbook
from tests.helpers.rpc import failure_of
from tests.helpers.services import Mesh, basics

NOWHERE = "127.0.0.1:9"


async def _catalog_stub(
    stack: AsyncExitStack, dsn: str, events_addrs: tuple[str, ...]
) -> catalog_pb2_grpc.CatalogServiceStub:
    settings = CatalogSettings(basics(dsn), events_addrs=events_addrs)
    host = GrpcHost(
        "catalog",
        "127.0.0.1:0",
        await stack.enter_async_context(assemble_catalog(settings)),
        auth=ServerAuth.off(),
    )
    port = await host.start()
    stack.push_async_callback(host.stop)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stack.push_async_callback(channel.close)
    return catalog_pb2_grpc.CatalogServiceStub(channel)


@pytest.fixture(scope="module")
async def catalog(mesh: Mesh) -> AsyncIterator[catalog_pb2_grpc.CatalogServiceStub]:
    async with AsyncExitStack() as stack:
        yield await _catalog_stub(stack, mesh.dsn, (mesh.addresses["events"],))


def new_path() -> str:
    return f"tests/delete/{uuid.uuid4().hex[:10]}"


async def register(catalog: catalog_pb2_grpc.CatalogServiceStub, path: str, times: int) -> list[int]:
    """Registers `times` versions of a noop playbook at `path`; their catalog ids, oldest first."""
    ids = []
    for revision in range(times):
        content = noop_playbook(path) + f"# revision {revision}\n"
        ids.append(
            (await catalog.Register(catalog_pb2.RegisterRequest(content=content), timeout=10)).catalog_id
        )
    return ids


async def run(mesh: Mesh, path: str, version: int) -> None:
    """Starts the version, which writes events that reference its catalog id."""
    started = await mesh.execution.Start(execution_pb2.StartRequest(path=path, version=version), timeout=20)
    assert started.execution_id > 0


def refs(versions: list[catalog_pb2.CatalogVersionRef]) -> list[tuple[int, int, bool]]:
    return [(ref.catalog_id, ref.version, ref.archived) for ref in versions]


async def rows(db: asyncpg.Connection, path: str) -> dict[int, bool]:
    """version → archived, for every stored row of the path."""
    found = await db.fetch("SELECT version, archived_at FROM noetl.catalog WHERE path = $1", path)
    return {row["version"]: row["archived_at"] is not None for row in found}


async def test_delete_removes_unused_versions_and_archives_used_ones(
    mesh: Mesh, catalog: catalog_pb2_grpc.CatalogServiceStub, db: asyncpg.Connection
) -> None:
    path = new_path()
    v1, v2, v3 = await register(catalog, path, 3)
    await run(mesh, path, 2)

    deleted = await catalog.Delete(catalog_pb2.CatalogServiceDeleteRequest(path=path), timeout=30)

    assert refs(list(deleted.versions)) == [(v3, 3, False), (v2, 2, True), (v1, 1, False)]
    assert await rows(db, path) == {2: True}
    # Archived: not "latest", not listed, but still there for what pinned it (a rerun, a catalog id).
    latest = await failure_of(catalog.GetResource(catalog_pb2.GetResourceRequest(path=path), timeout=10))
    assert latest.code is grpc.StatusCode.NOT_FOUND
    assert latest.message == "Catalog entry not found"
    by_id = await catalog.GetResource(catalog_pb2.GetResourceRequest(catalog_id=v2), timeout=10)
    assert (by_id.entry.version, by_id.entry.archived) == (2, True)
    assert not (await catalog.List(catalog_pb2.ListRequest(path=path), timeout=10)).entries
    archived = await catalog.List(catalog_pb2.ListRequest(path=path, include_archived=True), timeout=10)
    assert [(e.catalog_id, e.archived) for e in archived.entries] == [(v2, True)]


async def test_delete_and_restore_are_idempotent(
    mesh: Mesh, catalog: catalog_pb2_grpc.CatalogServiceStub, db: asyncpg.Connection
) -> None:
    path = new_path()
    _, v2 = await register(catalog, path, 2)
    await run(mesh, path, 2)
    delete = catalog_pb2.CatalogServiceDeleteRequest(path=path)
    restore = catalog_pb2.CatalogServiceRestoreRequest(path=path)

    assert len((await catalog.Delete(delete, timeout=30)).versions) == 2
    assert not (await catalog.Delete(delete, timeout=30)).versions

    restored = await catalog.Restore(restore, timeout=10)
    assert refs(list(restored.versions)) == [(v2, 2, False)]
    assert await rows(db, path) == {2: False}
    latest = await catalog.GetResource(catalog_pb2.GetResourceRequest(path=path), timeout=10)
    assert latest.entry.catalog_id == v2
    assert not (await catalog.Restore(restore, timeout=10)).versions


async def test_archiving_the_newest_version_makes_the_previous_one_latest(
    mesh: Mesh, catalog: catalog_pb2_grpc.CatalogServiceStub, db: asyncpg.Connection
) -> None:
    path = new_path()
    v1, v2 = await register(catalog, path, 2)
    await run(mesh, path, 2)

    deleted = await catalog.Delete(catalog_pb2.CatalogServiceDeleteRequest(path=path, version=2), timeout=30)

    assert refs(list(deleted.versions)) == [(v2, 2, True)]
    latest = await catalog.GetResource(catalog_pb2.GetResourceRequest(path=path), timeout=10)
    assert latest.entry.catalog_id == v1
    # The archived row keeps its version number: the next registration does not reuse it.
    await register(catalog, path, 1)
    assert await rows(db, path) == {1: False, 2: True, 3: False}


async def test_one_version_without_history_is_removed(
    catalog: catalog_pb2_grpc.CatalogServiceStub, db: asyncpg.Connection
) -> None:
    path = new_path()
    v1, _ = await register(catalog, path, 2)

    deleted = await catalog.Delete(catalog_pb2.CatalogServiceDeleteRequest(path=path, version=1), timeout=30)

    assert refs(list(deleted.versions)) == [(v1, 1, False)]
    assert await rows(db, path) == {2: False}
    missing = catalog_pb2.CatalogServiceDeleteRequest(path=path, version=7)
    assert not (await catalog.Delete(missing, timeout=30)).versions


async def test_restore_of_one_version_leaves_the_others_archived(
    mesh: Mesh, catalog: catalog_pb2_grpc.CatalogServiceStub, db: asyncpg.Connection
) -> None:
    path = new_path()
    v1, _ = await register(catalog, path, 2)
    await run(mesh, path, 1)
    await run(mesh, path, 2)
    await catalog.Delete(catalog_pb2.CatalogServiceDeleteRequest(path=path), timeout=30)

    restored = await catalog.Restore(
        catalog_pb2.CatalogServiceRestoreRequest(path=path, version=1), timeout=10
    )

    assert refs(list(restored.versions)) == [(v1, 1, False)]
    assert await rows(db, path) == {1: False, 2: True}


@pytest.mark.parametrize("blank", ["", "   "])
async def test_a_blank_path_is_an_invalid_argument(
    catalog: catalog_pb2_grpc.CatalogServiceStub, blank: str
) -> None:
    for call in (
        catalog.Delete(catalog_pb2.CatalogServiceDeleteRequest(path=blank), timeout=10),
        catalog.Restore(catalog_pb2.CatalogServiceRestoreRequest(path=blank), timeout=10),
    ):
        failure = await failure_of(call)
        assert (failure.code, failure.message) == (grpc.StatusCode.INVALID_ARGUMENT, "path must not be empty")


async def test_without_the_event_log_delete_fails_and_changes_nothing(
    mesh: Mesh, catalog: catalog_pb2_grpc.CatalogServiceStub, db: asyncpg.Connection
) -> None:
    """Without history the catalog cannot tell remove from archive, so it does neither."""
    path = new_path()
    await register(catalog, path, 1)
    async with AsyncExitStack() as stack:
        cut_off = await _catalog_stub(stack, mesh.dsn, (NOWHERE,))
        failure = await failure_of(
            cut_off.Delete(catalog_pb2.CatalogServiceDeleteRequest(path=path), timeout=30)
        )
    assert failure.code is grpc.StatusCode.UNAVAILABLE
    assert await rows(db, path) == {1: False}


async def test_usage_is_asked_of_every_events_shard(
    mesh: Mesh, catalog: catalog_pb2_grpc.CatalogServiceStub, db: asyncpg.Connection
) -> None:
    """With two shard addresses (both the one events service here) the answers are joined."""
    path = new_path()
    v1, v2 = await register(catalog, path, 2)
    await run(mesh, path, 1)
    async with AsyncExitStack() as stack:
        events = mesh.addresses["events"]
        two_shards = await _catalog_stub(stack, mesh.dsn, (events, events))
        deleted = await two_shards.Delete(catalog_pb2.CatalogServiceDeleteRequest(path=path), timeout=30)
    assert refs(list(deleted.versions)) == [(v2, 2, False), (v1, 1, True)]


async def test_catalog_usage_names_only_ids_that_events_reference(
    mesh: Mesh, catalog: catalog_pb2_grpc.CatalogServiceStub
) -> None:
    path = new_path()
    used, unused = await register(catalog, path, 2)
    await run(mesh, path, 1)

    asked = events_pb2.CatalogUsageRequest(catalog_ids=[unused, used, used, 42])
    answer = await mesh.events.CatalogUsage(asked, timeout=10)

    assert list(answer.used_catalog_ids) == [used]
    empty = await mesh.events.CatalogUsage(events_pb2.CatalogUsageRequest(), timeout=10)
    assert not empty.used_catalog_ids


WORKLOAD_PLAYBOOK = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: form_probe
  path: {path}
  description: Greets someone
workload:
  who: world
  times: 3
  ratio: 0.5
  loud: false
  since: 2024-01-31
  nothing: null
  tags: [a, b]
  db:
    port: 5432
    host: localhost
workflow:
  - step: start
    tool:
      kind: noop
"""


async def test_ui_schema_describes_the_workload_in_document_order(
    catalog: catalog_pb2_grpc.CatalogServiceStub,
) -> None:
    path = new_path()
    await catalog.Register(
        catalog_pb2.RegisterRequest(content=WORKLOAD_PLAYBOOK.format(path=path)), timeout=10
    )
    await catalog.Register(catalog_pb2.RegisterRequest(content=noop_playbook(path)), timeout=10)

    latest = await catalog.UiSchema(catalog_pb2.UiSchemaRequest(path=path), timeout=10)
    assert (latest.version, json.loads(latest.workload_json)) == (2, {})
    form = await catalog.UiSchema(catalog_pb2.UiSchemaRequest(path=path, version=1), timeout=10)

    assert (form.path, form.version, form.kind) == (path, 1, "playbook")
    workload = json.loads(form.workload_json)
    # JSONB would have put the shorter keys first; the form keeps the author's order.
    assert list(workload) == ["who", "times", "ratio", "loud", "since", "nothing", "tags", "db"]
    assert workload["since"] == "2024-01-31"
    schema = json.loads(form.ui_schema_json)
    assert (schema["title"], schema["description"], schema["required"]) == (
        "form_probe",
        "Greets someone",
        [],
    )
    assert schema["properties"]["db"] == {
        "type": "object",
        "properties": {
            "port": {"type": "integer", "default": 5432},
            "host": {"type": "string", "default": "localhost"},
        },
    }


async def test_ui_schema_of_an_unknown_path_is_not_found(
    catalog: catalog_pb2_grpc.CatalogServiceStub,
) -> None:
    for request in (
        catalog_pb2.UiSchemaRequest(path=new_path()),
        catalog_pb2.UiSchemaRequest(path=""),
    ):
        failure = await failure_of(catalog.UiSchema(request, timeout=10))
        assert (failure.code, failure.message) == (grpc.StatusCode.NOT_FOUND, "Catalog entry not found")
