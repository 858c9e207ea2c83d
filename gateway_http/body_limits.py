"""Per-route request body limits (README, Configuration): a larger body answers 413 naming the limit.

A declared `Content-Length` over the limit is refused before anything is read; a chunked body is
counted as it arrives and refused at the first byte past the limit, so the gateway never holds more
than the limit of any request in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive

from gateway_http.routes import Handler
from kernel.config import EnvReader
from kernel.errors import PayloadTooLarge

MIB = 1024 * 1024
# Routes whose bodies carry step data (events) or a stored value (result store), and playbooks;
# every other route takes `NOETL_GATEWAY_MAX_BODY_BYTES`.
_EVENT_PATHS = frozenset({"/events", "/events/batch", "/internal/events/project"})
_PLAYBOOK_PATHS = frozenset({"/catalog/register", "/catalog/register/batch"})
_RESULT_PATHS = frozenset({"/result/{execution_id}"})


@dataclass(frozen=True, slots=True)
class BodyLimits:
    default: int
    playbook: int
    events: int
    result: int

    @classmethod
    def load(cls, env: EnvReader) -> BodyLimits:
        return cls(
            default=env.integer("NOETL_GATEWAY_MAX_BODY_BYTES", 1 * MIB, minimum=1024),
            playbook=env.integer("NOETL_GATEWAY_MAX_PLAYBOOK_BYTES", 4 * MIB, minimum=1024),
            # As large as the biggest result a worker sends inline (NOETL_WORKER_MAX_RESULT_BYTES).
            events=env.integer("NOETL_GATEWAY_MAX_EVENT_BYTES", 16 * MIB, minimum=1024),
            # A 64 MiB result-store value with room for its JSON envelope.
            result=env.integer("NOETL_GATEWAY_MAX_RESULT_BYTES", 80 * MIB, minimum=1024),
        )

    def for_path(self, path: str) -> tuple[int, str]:
        """The limit of a route (its path below the prefix) and the variable that sets it."""
        if path in _EVENT_PATHS:
            return self.events, "NOETL_GATEWAY_MAX_EVENT_BYTES"
        if path in _PLAYBOOK_PATHS:
            return self.playbook, "NOETL_GATEWAY_MAX_PLAYBOOK_BYTES"
        if path in _RESULT_PATHS:
            return self.result, "NOETL_GATEWAY_MAX_RESULT_BYTES"
        return self.default, "NOETL_GATEWAY_MAX_BODY_BYTES"


def limited(handler: Handler, limit: int, variable: str) -> Handler:
    """`handler` reading its body through a counter that stops at `limit` bytes."""

    async def bounded(request: Request) -> Response:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(request, limit, variable)
        return await handler(Request(request.scope, _counting(request, limit, variable)))

    bounded.__name__ = getattr(handler, "__name__", "bounded")
    return bounded


def _counting(request: Request, limit: int, variable: str) -> Receive:
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _too_large(request, limit, variable)
        return message

    return receive


def _too_large(request: Request, limit: int, variable: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"Request body too large: {request.method} {request.url.path} accepts at most {limit} bytes ({variable})"
    )
