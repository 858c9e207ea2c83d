"""Route handlers by area; each module lists its `Endpoint`s and `app.py` mounts them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path

from gateway_http.openapi.build import Operation
from kernel.errors import NotFound, Unavailable

Handler = Callable[[Request], Awaitable[Response]]
StubT = TypeVar("StubT")
ReplyT = TypeVar("ReplyT")
# Every `/api/<x>` route is also served as `/noetl/<x>` (http-api.md §1.1).
PREFIXES = ("/api", "/noetl")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One route; `path` is relative to the `/api` and `/noetl` prefixes unless `root`.

    `doc` is its OpenAPI operation (gateway_http/openapi). `internal` puts it behind the internal
    token gate (http-api.md §1.8).
    """

    path: str
    handler: Handler
    methods: tuple[str, ...]
    doc: Operation
    root: bool = False
    internal: bool = False

    @property
    def api_path(self) -> str:
        """The path in its `/api` form, without Starlette's convertors (`{name:path}` → `{name}`)."""
        return compile_path(self.path if self.root else PREFIXES[0] + self.path)[1]


def set_present(message: Any, **values: Any) -> None:
    """Sets the proto3 `optional` fields that have a value; None leaves a field absent."""
    for name, value in values.items():
        if value is not None:
            setattr(message, name, value)


async def first_found(
    shards: Sequence[StubT], call: Callable[[StubT], Awaitable[ReplyT]], missing: str
) -> ReplyT:
    """The first shard's answer that is not NotFound, for an id that does not say which shard owns it
    (a command's event id, a batch's request id, an event id).

    Raises:
        Unavailable: no shard knew the id and at least one could not be asked (it may be the
            owner: 503, retry, rather than 404).
        NotFound: `missing`, when every shard answered that it does not know the id.
        MeshError: any other error of the owning shard, as it came.
    """
    unreachable: Unavailable | None = None
    for shard in shards:
        try:
            return await call(shard)
        except NotFound:
            continue
        except Unavailable as exc:
            unreachable = unreachable or exc
    if unreachable is not None:
        raise unreachable
    raise NotFound(missing)
