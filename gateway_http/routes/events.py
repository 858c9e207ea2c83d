"""`POST /api/events` → EventService.Emit on the execution's shard (http-api.md §5.1)."""

from __future__ import annotations

from noetl.v1 import events_pb2, events_pb2_grpc
from starlette.requests import Request
from starlette.responses import Response

from gateway_http.encoding import dumps, json_response
from gateway_http.routes import Endpoint, set_present
from gateway_http.validation import Problems, read_json
from services.common.grpc_client import Sharded


class EventRoutes:
    def __init__(self, events: Sharded[events_pb2_grpc.EventServiceStub], rpc_timeout: float) -> None:
        self._events = events
        self._timeout = rpc_timeout

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("/events", self.emit, ("POST",))]

    async def emit(self, request: Request) -> Response:
        """Alias winners as in the reference: `step` over `node_name`, `name` over `event_type`,
        `payload` over `context`. `event_id`, `status` and `created_at` are ignored: the service
        mints, derives and stamps them. Payload rules (`_internal_data`, `result` keys) are the
        service's and answer 422 `{"detail": "..."}`.
        """
        problems = Problems()
        fields = problems.body(await read_json(request))
        execution_id = fields.required_identifier("execution_id")
        step = fields.required_text("step", "node_name")
        event_type = fields.required_text("name", "event_type")
        payload = fields.mapping("payload", "context")
        meta = fields.mapping("meta")
        worker_id = fields.text("worker_id")
        actionable = fields.flag("actionable", True)
        informative = fields.flag("informative", True)
        problems.check()
        event = events_pb2.WorkerEvent(
            execution_id=execution_id,
            step=step,
            event_type=event_type,
            payload_json=dumps({} if payload is None else payload),
            meta_json=b"" if meta is None else dumps(meta),
            actionable=actionable,
            informative=informative,
        )
        set_present(event, worker_id=worker_id)
        emitted = await self._events.for_execution(execution_id).Emit(
            events_pb2.EmitRequest(event=event), timeout=self._timeout
        )
        return json_response(
            {"status": "ok", "event_id": emitted.event_id, "commands_generated": emitted.commands_generated}
        )
