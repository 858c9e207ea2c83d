"""Route handlers by area; each module lists its `Endpoint`s and `app.py` mounts them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One route; `path` is relative to the `/api` and `/noetl` prefixes unless `root`.

    `internal` puts it behind the internal token gate (http-api.md §1.8).
    """

    path: str
    handler: Handler
    methods: tuple[str, ...]
    root: bool = False
    internal: bool = False


def set_present(message: Any, **values: Any) -> None:
    """Sets the proto3 `optional` fields that have a value; None leaves a field absent."""
    for name, value in values.items():
        if value is not None:
            setattr(message, name, value)
