"""The claim protocol → CommandService (http-api.md §6.1, §6.2).

A command is addressed by its `command.issued` event id alone, which does not say which shard
owns it, so each call asks the shards in order until one knows the command.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from noetl.v1 import execution_pb2
from starlette.requests import Request
from starlette.responses import Response

from gateway_http.clients import ExecutionShard
from gateway_http.encoding import dumps, json_response
from gateway_http.routes import Endpoint
from gateway_http.validation import Problems, read_json
from gateway_http.views import command_body
from services.common.errors import NotFound, Unavailable
from services.common.grpc_client import Sharded

ReplyT = TypeVar("ReplyT")


class CommandRoutes:
    def __init__(self, execution: Sharded[ExecutionShard], rpc_timeout: float) -> None:
        self._execution = execution
        self._timeout = rpc_timeout

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint("/commands/{event_id}", self.get, ("GET",)),
            Endpoint("/commands/{event_id}/claim", self.claim, ("POST",)),
        ]

    async def get(self, request: Request) -> Response:
        """§6.1 → `GetCommand`."""
        problems = Problems()
        event_id = problems.path_id(request, "event_id")
        problems.check()
        query = execution_pb2.GetCommandRequest(event_id=event_id)
        found = await self._on_owner(
            event_id, lambda shard: shard.commands.GetCommand(query, timeout=self._timeout)
        )
        return json_response(command_body(found.command))

    async def claim(self, request: Request) -> Response:
        """§6.2 → `Claim`. `event_id` in the answer is the command's (`command.issued`) event id.

        Claim is sent straight to each shard in turn rather than after a `GetCommand` probe: a
        shard that does not hold the command answers NotFound without writing anything, and the
        common single-shard case then costs one call instead of two (and no second copy of the
        command context). Conflicts come back as 409 `{"detail": {"code": ...}}` with Retry-After.
        """
        problems = Problems()
        event_id = problems.path_id(request, "event_id")
        fields = problems.body(await read_json(request))
        worker_id = fields.required_text("worker_id")
        locality = fields.mapping("locality")
        problems.check()
        claim = execution_pb2.ClaimRequest(
            event_id=event_id, worker_id=worker_id, locality_json=b"" if locality is None else dumps(locality)
        )
        claimed = await self._on_owner(
            event_id, lambda shard: shard.commands.Claim(claim, timeout=self._timeout)
        )
        command = claimed.command
        return json_response({"status": "ok", "event_id": command.event_id, **command_body(command)})

    async def _on_owner(self, event_id: int, call: Callable[[ExecutionShard], Awaitable[ReplyT]]) -> ReplyT:
        """The first shard's answer that is not NotFound.

        Raises:
            Unavailable: no shard knew the command and at least one could not be asked.
            NotFound: every shard answered that it does not know the command.
            MeshError: any other error of the owning shard, as it came.
        """
        unreachable: Unavailable | None = None
        for shard in self._execution.all():
            try:
                return await call(shard)
            except NotFound:
                continue
            except Unavailable as exc:
                # That shard may be the owner: answer 503 (retry) rather than 404 if nobody else has it.
                unreachable = unreachable or exc
        if unreachable is not None:
            raise unreachable
        raise NotFound(f"command not found: {event_id}")
