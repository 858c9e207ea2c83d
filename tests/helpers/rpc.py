"""What a failed RPC said: status, message and the taxonomy metadata our servers attach."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import grpc

from kernel.rpc_errors import DETAIL_KEY, KIND_KEY, RETRY_AFTER_KEY


@dataclass(frozen=True, slots=True)
class Failure:
    code: grpc.StatusCode
    message: str
    kind: str | None  # the MeshError class name, e.g. "Unprocessable"
    detail: Any  # the structured detail (a string or a JSON object)
    retry_after: str | None


async def failure_of(call: Awaitable[Any]) -> Failure:
    """Awaits an RPC that must fail and describes how it failed.

    Raises:
        AssertionError: the RPC succeeded.
    """
    try:
        response = await call
    except grpc.aio.AioRpcError as exc:
        metadata = {key: value for key, value in (exc.trailing_metadata() or ()) if isinstance(value, str)}
        raw_detail = metadata.get(DETAIL_KEY)
        return Failure(
            code=exc.code(),
            message=exc.details() or "",
            kind=metadata.get(KIND_KEY),
            detail=json.loads(raw_detail) if raw_detail is not None else None,
            retry_after=metadata.get(RETRY_AFTER_KEY),
        )
    raise AssertionError(f"expected the RPC to fail, it answered {response!r}")
