"""Catalog versioning against a real database: concurrent registrations, latest, bad input."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from noetl.v1 import catalog_pb2

from tests.helpers.playbooks import noop_playbook
from tests.helpers.rpc import failure_of
from tests.helpers.services import Mesh

CONCURRENT = 20


async def test_concurrent_registrations_of_one_path_get_distinct_versions(mesh: Mesh) -> None:
    path = f"tests/versions/{uuid.uuid4().hex[:10]}"
    # Each version differs in content, so "latest" can be told apart from any other version.
    contents = [noop_playbook(path) + f"# revision {i}\n" for i in range(CONCURRENT)]

    responses = await asyncio.gather(
        *(mesh.catalog.Register(catalog_pb2.RegisterRequest(content=c), timeout=30) for c in contents)
    )

    assert sorted(r.version for r in responses) == list(range(1, CONCURRENT + 1))
    assert len({r.catalog_id for r in responses}) == CONCURRENT
    assert {r.path for r in responses} == {path}
    assert {r.kind for r in responses} == {"playbook"}

    newest = max(responses, key=lambda r: r.version)
    latest = (await mesh.catalog.GetResource(catalog_pb2.GetResourceRequest(path=path), timeout=10)).entry
    assert (latest.version, latest.catalog_id) == (CONCURRENT, newest.catalog_id)
    assert latest.content == contents[[r.catalog_id for r in responses].index(newest.catalog_id)]

    first = await mesh.catalog.GetResource(catalog_pb2.GetResourceRequest(path=path, version=1), timeout=10)
    assert first.entry.version == 1


@pytest.mark.parametrize(
    "content",
    ["key: [unclosed", "just a sentence, not a mapping", "- a\n- list\n"],
    ids=["broken-yaml", "scalar", "sequence"],
)
async def test_content_that_is_not_a_yaml_mapping_is_an_invalid_argument(mesh: Mesh, content: str) -> None:
    failure = await failure_of(
        mesh.catalog.Register(catalog_pb2.RegisterRequest(content=content), timeout=10)
    )
    assert failure.code is grpc.StatusCode.INVALID_ARGUMENT
    assert failure.message.startswith("Error registering resource"), failure.message


async def test_an_unknown_path_is_not_found(mesh: Mesh) -> None:
    request = catalog_pb2.GetResourceRequest(path=f"tests/missing/{uuid.uuid4().hex}")
    failure = await failure_of(mesh.catalog.GetResource(request, timeout=10))
    assert failure.code is grpc.StatusCode.NOT_FOUND
