"""The one error → HTTP mapping (http-api.md §1.3)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.exceptions import HTTPException

from gateway_http.errors import RequestInvalid, error_response
from kernel import errors


def body(exc: Exception) -> Any:
    return json.loads(bytes(error_response(exc).body))


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.InvalidArgument("bad yaml"), 400),
        (errors.NotFound("Execution 1 not found"), 404),
        (errors.Conflict("taken"), 409),
        (errors.AlreadyExists("exists"), 409),
        (errors.FailedPrecondition("closed"), 409),
        (errors.Unprocessable("not executable"), 422),
        (errors.Internal("boom"), 500),
        (errors.Unavailable("db down"), 503),
    ],
)
def test_each_taxonomy_class_has_its_status_and_a_detail_body(error: errors.MeshError, status: int) -> None:
    response = error_response(error)
    assert response.status_code == status
    assert response.body == json.dumps({"detail": error.detail}, separators=(",", ":")).encode()
    assert "retry-after" not in response.headers


def test_structured_detail_and_retry_after_pass_through() -> None:
    conflict = errors.Conflict({"code": "active_claim", "worker_id": "w-1"}, retry_after=2)
    response = error_response(conflict)
    assert response.status_code == 409
    assert response.body == b'{"detail":{"code":"active_claim","worker_id":"w-1"}}'
    assert response.headers["retry-after"] == "2"


def test_unavailable_carries_retry_after() -> None:
    response = error_response(errors.Unavailable({"code": "pool_saturated"}, retry_after=3))
    assert response.status_code == 503
    assert body(errors.Unavailable({"code": "pool_saturated"})) == {"detail": {"code": "pool_saturated"}}
    assert response.headers["retry-after"] == "3"


def test_validation_errors_use_the_fastapi_list_form() -> None:
    item = {"type": "missing", "loc": ["body", "content"], "msg": "Field required", "input": {}}
    response = error_response(RequestInvalid([item]))
    assert response.status_code == 422
    assert (
        response.body
        == b'{"detail":[{"type":"missing","loc":["body","content"],"msg":"Field required","input":{}}]}'
    )


def test_routing_errors_are_json() -> None:
    assert body(HTTPException(404)) == {"detail": "Not Found"}
    not_allowed = error_response(HTTPException(405, headers={"Allow": "GET"}))
    assert not_allowed.status_code == 405
    assert not_allowed.body == b'{"detail":"Method Not Allowed"}'
    assert not_allowed.headers["allow"] == "GET"


def test_unexpected_exceptions_are_500_with_their_message() -> None:
    response = error_response(RuntimeError("kaput"))
    assert response.status_code == 500
    assert response.body == b'{"detail":"kaput"}'
    assert body(KeyError()) == {"detail": "KeyError"}
