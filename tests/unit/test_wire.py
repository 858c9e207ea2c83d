"""The one decoding of a request's `*_json` field (kernel/wire.py)."""

from __future__ import annotations

import json

import pytest

from kernel.errors import InvalidArgument
from kernel.wire import json_field


def test_empty_bytes_are_null_and_json_is_parsed() -> None:
    assert json_field(b"", "data_json") is None
    assert json_field(b'{"a": [1, null]}', "data_json") == {"a": [1, None]}


def test_malformed_json_is_invalid_argument_naming_the_field_and_not_quoting_it() -> None:
    with pytest.raises(InvalidArgument) as caught:
        json_field(b'{"password": "hunter2', "data")
    assert str(caught.value).startswith("data is not valid JSON: ")
    assert "hunter2" not in str(caught.value)


def test_a_caller_may_parse_with_the_standard_library_for_exact_big_integers() -> None:
    big = 2**70 + 1
    assert json_field(str(big).encode(), "parameters_json", json.loads) == big
    with pytest.raises(InvalidArgument, match="parameters_json is not valid JSON"):
        json_field(b"[1,", "parameters_json", json.loads)
