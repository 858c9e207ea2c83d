"""The gateway's JSON encoder writes exactly what FastAPI's JSONResponse writes (http-api.md §1.2)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from gateway_http.encoding import dumps, json_response

SAMPLES: list[Any] = [
    {"status": "ok"},
    {"b": 1, "a": 2, "nested": {"z": [1, 2, {"y": None}], "x": True, "w": False}},
    {"text": "héllo wörld ✓ 日本語 😀", "quote": 'a"b\\c', "controls": "\n\r\t\b\f\x00\x1f\x7f"},
    {"separators": "\u2028\u2029", "slash": "a/b"},
    [0.1, 1.377, 2.0, 1e-7, 1.5e-07, 1e16, 123456789012345680000.0, -0.0, 5e-324],
    [612400000000000001, 2**63 - 1, -(2**63), 123456789012345678901234567890],
    {"empty_list": [], "empty_object": {}, "empty_text": ""},
    None,
    "plain",
]


@pytest.mark.parametrize("value", SAMPLES)
def test_bytes_match_fastapi_json_response(value: Any) -> None:
    expected = json.dumps(value, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))
    assert dumps(value) == expected.encode("utf-8")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, {"x": [math.nan]}])
def test_non_finite_floats_are_errors(value: Any) -> None:
    with pytest.raises(ValueError, match="Out of range float values"):
        dumps(value)


def test_values_json_cannot_carry_are_errors() -> None:
    with pytest.raises(TypeError):
        dumps({"when": object()})


def test_json_response_is_compact_utf8_with_the_json_media_type() -> None:
    response = json_response({"detail": "café"}, 409, {"Retry-After": "2"})
    assert response.status_code == 409
    assert response.body == '{"detail":"café"}'.encode()
    assert response.headers["content-type"] == "application/json"
    assert response.headers["retry-after"] == "2"
