"""VarsService (http-api.md §8) on noetl.transient: upserts, counted reads, deletes and refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from itertools import count

import asyncpg
import grpc
import orjson
import pytest
from noetl.v1 import vars_pb2, vars_pb2_grpc

from tests.helpers.rpc import failure_of
from tests.helpers.services import Mesh

_execution_ids = count(700_000_000_000_000_001)


@pytest.fixture(scope="module")
async def stub(mesh: Mesh) -> AsyncIterator[vars_pb2_grpc.VarsServiceStub]:
    """The execution service serves VarsService on its own port."""
    async with grpc.aio.insecure_channel(mesh.addresses["execution"]) as channel:
        yield vars_pb2_grpc.VarsServiceStub(channel)


@pytest.fixture
def execution_id() -> int:
    """Variables need no execution to exist: each test takes an id of its own."""
    return next(_execution_ids)


def assignments(values: list[tuple[str, object]]) -> list[vars_pb2.VariableAssignment]:
    return [vars_pb2.VariableAssignment(name=name, value_json=orjson.dumps(value)) for name, value in values]


async def set_values(
    stub: vars_pb2_grpc.VarsServiceStub,
    execution_id: int,
    values: list[tuple[str, object]],
    var_type: str = "user_defined",
    source_step: str | None = None,
) -> vars_pb2.SetVariablesResponse:
    request = vars_pb2.SetVariablesRequest(
        execution_id=execution_id, variables=assignments(values), var_type=var_type
    )
    if source_step is not None:
        request.source_step = source_step
    response: vars_pb2.SetVariablesResponse = await stub.SetVariables(request, timeout=10)
    return response


async def listed(
    stub: vars_pb2_grpc.VarsServiceStub, execution_id: int
) -> dict[str, vars_pb2.ExecutionVariable]:
    response = await stub.ListVariables(vars_pb2.ListVariablesRequest(execution_id=execution_id), timeout=10)
    return {item.name: item for item in response.variables}


async def test_set_list_and_counted_reads(stub: vars_pb2_grpc.VarsServiceStub, execution_id: int) -> None:
    big = 2**70  # beyond 64 bits: the value travels and is stored as JSON text
    done = await set_values(
        stub, execution_id, [("y", "a"), ("x", 1), ("nested", {"k": [1, 2.5, None]}), ("nothing", None)]
    )
    assert done.variables_set == 4
    assert list(done.var_names) == ["y", "x", "nested", "nothing"]
    big_request = vars_pb2.SetVariablesRequest(
        execution_id=execution_id,
        variables=[vars_pb2.VariableAssignment(name="big", value_json=str(big).encode())],
        var_type="computed",
        source_step="start",
    )
    await stub.SetVariables(big_request, timeout=10)

    found = await listed(stub, execution_id)
    assert list(found) == ["big", "nested", "nothing", "x", "y"]  # by name
    assert {name: orjson.loads(item.value_json) for name, item in found.items() if name != "big"} == {
        "nested": {"k": [1, 2.5, None]},
        "nothing": None,
        "x": 1,
        "y": "a",
    }
    assert found["big"].value_json == str(big).encode()
    assert (found["big"].var_type, found["big"].source_step) == ("computed", "start")
    assert found["x"].var_type == "user_defined" and not found["x"].HasField("source_step")
    assert all(item.access_count == 0 for item in found.values())

    first = await stub.GetVariable(
        vars_pb2.GetVariableRequest(execution_id=execution_id, name="x"), timeout=10
    )
    second = await stub.GetVariable(
        vars_pb2.GetVariableRequest(execution_id=execution_id, name="x"), timeout=10
    )
    assert (first.variable.access_count, second.variable.access_count) == (1, 2)
    assert second.variable.accessed_at.ToDatetime() >= first.variable.accessed_at.ToDatetime()
    assert second.variable.created_at == found["x"].created_at
    after = await listed(stub, execution_id)
    assert after["x"].access_count == 2 and after["y"].access_count == 0  # listing is not an access


async def test_setting_again_replaces_the_value_and_keeps_the_history(
    stub: vars_pb2_grpc.VarsServiceStub, db: asyncpg.Connection, execution_id: int
) -> None:
    await set_values(stub, execution_id, [("x", 1)], source_step="start")
    await stub.GetVariable(vars_pb2.GetVariableRequest(execution_id=execution_id, name="x"), timeout=10)
    before = (await listed(stub, execution_id))["x"]

    # A repeated name keeps its last value, as in a JSON object.
    done = await set_values(stub, execution_id, [("x", 2), ("z", 0), ("x", 3)], var_type="step_result")
    assert list(done.var_names) == ["x", "z"] and done.variables_set == 2
    after = (await listed(stub, execution_id))["x"]
    assert orjson.loads(after.value_json) == 3
    assert after.var_type == "step_result" and not after.HasField("source_step")
    assert after.created_at == before.created_at and after.access_count == 1
    row = await db.fetchrow(
        "SELECT scope, expires_at FROM noetl.transient WHERE execution_id = $1 AND var_name = 'x'",
        execution_id,
    )
    assert row is not None and dict(row) == {"scope": "execution", "expires_at": None}


async def test_deletes(stub: vars_pb2_grpc.VarsServiceStub, execution_id: int) -> None:
    await set_values(stub, execution_id, [("a", 1), ("b", 2), ("c", 3)])
    other = next(_execution_ids)
    await set_values(stub, other, [("a", 1)])

    one = await stub.DeleteVariable(
        vars_pb2.DeleteVariableRequest(execution_id=execution_id, name="a"), timeout=10
    )
    again = await stub.DeleteVariable(
        vars_pb2.DeleteVariableRequest(execution_id=execution_id, name="a"), timeout=10
    )
    assert (one.deleted, again.deleted) == (True, False)
    rest = await stub.DeleteVariables(vars_pb2.DeleteVariablesRequest(execution_id=execution_id), timeout=10)
    assert rest.deleted_count == 2
    assert await listed(stub, execution_id) == {}
    assert list(await listed(stub, other)) == ["a"]  # another execution's variables stay
    none_left = await stub.DeleteVariables(
        vars_pb2.DeleteVariablesRequest(execution_id=execution_id), timeout=10
    )
    assert none_left.deleted_count == 0


async def test_an_unknown_variable_is_not_found(
    stub: vars_pb2_grpc.VarsServiceStub, execution_id: int
) -> None:
    failure = await failure_of(
        stub.GetVariable(vars_pb2.GetVariableRequest(execution_id=execution_id, name="ghost"), timeout=10)
    )
    assert failure.code is grpc.StatusCode.NOT_FOUND
    assert failure.detail == f"Variable 'ghost' not found for execution {execution_id}"


@pytest.mark.parametrize(
    ("values", "var_type", "detail"),
    [
        ([], "user_defined", "Request body must contain 'variables' dict with at least one variable"),
        (
            [("x", 1)],
            "global",
            "Invalid var_type 'global'. Must be one of: user_defined, step_result, computed, iterator_state",
        ),
    ],
)
async def test_refused_requests(
    stub: vars_pb2_grpc.VarsServiceStub,
    execution_id: int,
    values: list[tuple[str, object]],
    var_type: str,
    detail: str,
) -> None:
    failure = await failure_of(set_values(stub, execution_id, values, var_type=var_type))
    assert failure.code is grpc.StatusCode.INVALID_ARGUMENT
    assert failure.detail == detail
    assert await listed(stub, execution_id) == {}


async def test_a_value_that_is_not_utf8_is_refused(
    stub: vars_pb2_grpc.VarsServiceStub, execution_id: int
) -> None:
    request = vars_pb2.SetVariablesRequest(
        execution_id=execution_id,
        variables=[vars_pb2.VariableAssignment(name="x", value_json=b'"\xff"')],
        var_type="user_defined",
    )
    failure = await failure_of(stub.SetVariables(request, timeout=10))
    assert failure.code is grpc.StatusCode.INVALID_ARGUMENT
    assert failure.detail == "value_json of variable 'x' is not UTF-8"


@pytest.mark.parametrize(
    ("value_json", "cause"),
    [
        (b'"a\\u0000b"', "unsupported Unicode escape sequence"),  # JSON, but not storable in JSONB
        (b"{not json", "invalid input syntax for type json"),
    ],
)
async def test_what_the_database_refuses_fails_naming_the_operation(
    stub: vars_pb2_grpc.VarsServiceStub, execution_id: int, value_json: bytes, cause: str
) -> None:
    request = vars_pb2.SetVariablesRequest(
        execution_id=execution_id,
        variables=[
            vars_pb2.VariableAssignment(name="ok", value_json=b"1"),
            vars_pb2.VariableAssignment(name="x", value_json=value_json),
        ],
        var_type="user_defined",
    )
    failure = await failure_of(stub.SetVariables(request, timeout=10))
    assert failure.code is grpc.StatusCode.INTERNAL
    assert failure.detail.startswith(f"Failed to set variables: {cause}"), failure.detail
    assert await listed(stub, execution_id) == {}  # one statement: nothing of the request is kept
