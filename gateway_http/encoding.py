"""The gateway's one JSON encoder (http-api.md §1.2).

Responses must match FastAPI's `JSONResponse` byte for byte, so this is the standard library
encoder with FastAPI's options rather than orjson: orjson writes `1e-7` where Python writes
`1e-07` and turns NaN into `null` where the contract demands an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

# One encoder instance: `json.dumps` would build an identical one on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON.

    Raises:
        ValueError: for NaN or infinite floats.
        TypeError: for values JSON cannot carry.
    """
    return _ENCODER.encode(value).encode("utf-8")


def json_response(content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(dumps(content), status_code=status_code, headers=headers, media_type="application/json")
