"""Integers beyond 64 bits are valid JSON: encoding one must not fail (a fuzzed body held one)."""

from __future__ import annotations

import pytest

from kernel import jsonutil


def test_an_integer_beyond_64_bits_is_encoded_exactly() -> None:
    value = {"big": -17004275585589563392, "text": "Grüße", "nested": [2**70, 1.5, None]}
    assert jsonutil.dumps(value) == (
        '{"big":-17004275585589563392,"text":"Grüße","nested":[1180591620717411303424,1.5,null]}'.encode()
    )


def test_values_json_cannot_carry_still_raise_type_error() -> None:
    with pytest.raises(TypeError):
        jsonutil.dumps({"big": 2**70, "thing": object()})
