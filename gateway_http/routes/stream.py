"""`GET /api/executions/{id}/events/stream`: Server-Sent Events of an execution (http-api.md §4.7)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from noetl.v1 import common_pb2
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway_http.encoding import dumps
from gateway_http.event_feeds import EventFeeds, follow
from gateway_http.openapi.build import BACKEND, EXECUTION_ID, Operation, header_param
from gateway_http.routes import Endpoint
from gateway_http.validation import Problems, parse_id
from gateway_http.views import event_object

KEEPALIVE_SECONDS = 15.0

EventView = Callable[[common_pb2.Event], Any]


class StreamRoutes:
    def __init__(self, feeds: EventFeeds, rpc_timeout: float, keepalive: float = KEEPALIVE_SECONDS) -> None:
        self._feeds = feeds
        self._timeout = rpc_timeout
        self._keepalive = keepalive

    def endpoints(self) -> list[Endpoint]:
        events = {
            "200": {
                "description": (
                    "One message per event (`id`, `event`, `data` = the event object), a"
                    " `: keep-alive` comment every 15 s; closes after the terminal event"
                ),
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            }
        }
        return [
            Endpoint(
                "/executions/{execution_id}/events/stream",
                self.stream,
                ("GET",),
                Operation(
                    "execution_event_stream",
                    "executions",
                    "Server-Sent Events of an execution: the log replayed, then live",
                    events,
                    ("404", "422", *BACKEND),
                    parameters=(
                        EXECUTION_ID,
                        header_param("Last-Event-ID", "Resume: only events with a larger `event_id`"),
                    ),
                ),
            )
        ]

    async def stream(self, request: Request) -> Response:
        """Replays the log, then pushes new events live; `Last-Event-ID` resumes after that id."""
        return await self.respond(request, event_object)

    async def respond(self, request: Request, view: EventView, *, typed: bool = True) -> Response:
        """The SSE answer with each event's `data` made by `view` (the console sends a lighter one).

        `typed` names each message after its event type (`event:`); without it every message is
        a plain `message`, which a browser's `EventSource.onmessage` receives whatever the type.

        The stream closes after the terminal event. An unknown execution answers a plain 404
        before any stream starts, so the first event (or the failure) is awaited up front.
        """
        problems = Problems()
        execution_id = problems.path_id(request, "execution_id")
        problems.check()
        after = parse_id(request.headers.get("last-event-id", "").strip())
        feed = self._feeds.join(execution_id)
        try:
            await feed.wait_beyond(0, self._timeout)
            if feed.error is not None:
                raise feed.error
        except BaseException:
            await self._feeds.leave(execution_id, feed)
            raise

        async def messages() -> AsyncIterator[bytes]:
            try:
                async for batch in follow(feed, after, self._keepalive):
                    if batch is None:
                        yield b": keep-alive\n\n"
                        continue
                    yield b"".join(_message(event, view, typed) for event in batch)
            finally:
                await self._feeds.leave(execution_id, feed)

        return StreamingResponse(
            messages(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


def _message(event: common_pb2.Event, view: EventView, typed: bool) -> bytes:
    kind = f"event: {event.event_type}\n" if typed else ""
    return f"id: {event.event_id}\n{kind}data: ".encode() + dumps(view(event)) + b"\n\n"
