"""The claim protocol → CommandService (http-api.md §6.1, §6.2).

A command is addressed by its `command.issued` event id alone, which does not say which shard
owns it, so each call asks the shards in order until one knows the command.
"""

from __future__ import annotations

from noetl.v1 import execution_pb2
from starlette.requests import Request
from starlette.responses import Response

from gateway_http.clients import ExecutionShard
from gateway_http.encoding import dumps, json_response
from gateway_http.openapi.build import BACKEND, BODY, Operation, json_body, obj, ok, path_param, ref
from gateway_http.routes import Endpoint, first_found
from gateway_http.validation import Problems, read_json
from gateway_http.views import command_body
from kernel.grpc_client import Sharded


class CommandRoutes:
    def __init__(self, execution: Sharded[ExecutionShard], rpc_timeout: float) -> None:
        self._execution = execution
        self._timeout = rpc_timeout

    def endpoints(self) -> list[Endpoint]:
        event_id = path_param("event_id", "Id of the command's `command.issued` event")
        return [
            Endpoint(
                "/commands/{event_id}",
                self.get,
                ("GET",),
                Operation(
                    "command_get",
                    "commands",
                    "A command by its `command.issued` event id",
                    ok("The command", ref("Command")),
                    ("404", "422", *BACKEND),
                    parameters=(event_id,),
                ),
            ),
            Endpoint(
                "/commands/{event_id}/claim",
                self.claim,
                ("POST",),
                Operation(
                    "command_claim",
                    "commands",
                    "Claim a command for a worker (lease 120 s)",
                    ok("Claimed (or already held by this worker)", ref("ClaimedCommand")),
                    (*BODY, "404", "409", *BACKEND),
                    description=(
                        '409 `{"detail": {"code": "active_claim" | "already_terminal", ...}}`, with'
                        " `Retry-After: 2` while another worker holds a live claim."
                    ),
                    parameters=(event_id,),
                    body=json_body(
                        obj({"worker_id": {"type": "string"}, "locality": {"type": "object"}}, ["worker_id"])
                    ),
                ),
            ),
        ]

    async def get(self, request: Request) -> Response:
        """§6.1 → `GetCommand`."""
        problems = Problems()
        event_id = problems.path_id(request, "event_id")
        problems.check()
        query = execution_pb2.GetCommandRequest(event_id=event_id)
        found = await first_found(
            self._execution.all(),
            lambda shard: shard.commands.GetCommand(query, timeout=self._timeout),
            f"command not found: {event_id}",
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
        claimed = await first_found(
            self._execution.all(),
            lambda shard: shard.commands.Claim(claim, timeout=self._timeout),
            f"command not found: {event_id}",
        )
        command = claimed.command
        return json_response({"status": "ok", "event_id": command.event_id, **command_body(command)})
