"""The console's routes: the page, its static files, and its two JSON helpers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway_http.clients import ExecutionShard
from gateway_http.console.events import console_event
from gateway_http.console.listing import STATUSES, ListQuery, list_page
from gateway_http.encoding import json_response
from gateway_http.routes.stream import StreamRoutes
from gateway_http.validation import Problems
from kernel.errors import NotFound
from kernel.grpc_client import Sharded

PREFIX = "/ui"
STATIC = Path(__file__).resolve().parent / "static"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
MAX_PAGE_SIZE = 200


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str


def load_assets(folder: Path = STATIC) -> dict[str, _Asset]:
    """Every file the page may ask for, by name; anything else is a 404 (no path is ever joined)."""
    assets = {}
    for file in sorted(folder.iterdir()):
        if file.suffix in _TYPES:
            body = file.read_bytes()
            assets[file.name] = _Asset(
                body, _TYPES[file.suffix], '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            )
    return assets


class ConsoleRoutes:
    def __init__(self, execution: Sharded[ExecutionShard], stream: StreamRoutes, rpc_timeout: float) -> None:
        self._execution = execution
        self._stream = stream
        self._timeout = rpc_timeout
        self._assets = load_assets()

    def routes(self) -> list[Route]:
        return [
            Route(PREFIX, self.page, methods=["GET"]),
            Route(PREFIX + "/", self.page, methods=["GET"]),
            Route(PREFIX + "/static/{name}", self.static, methods=["GET"]),
            Route(PREFIX + "/api/executions", self.executions, methods=["GET"]),
            Route(PREFIX + "/api/executions/{execution_id}/stream", self.stream, methods=["GET"]),
        ]

    async def page(self, request: Request) -> Response:
        """The one HTML page; views are chosen by the URL fragment (`#/executions/…`)."""
        return self._answer(request, self._assets["index.html"])

    async def static(self, request: Request) -> Response:
        asset = self._assets.get(request.path_params["name"])
        if asset is None:
            raise NotFound("Not Found")
        return self._answer(request, asset)

    @staticmethod
    def _answer(request: Request, asset: _Asset) -> Response:
        # Revalidated on every load (a gateway upgrade changes the files), answered 304 when unchanged.
        headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)

    async def executions(self, request: Request) -> Response:
        """A page of executions, newest first, filtered by `status`, `path` (substring) and `parent`."""
        problems = Problems()
        query = problems.query(request)
        page = query.number("page", 1, minimum=1, maximum=10_000)
        page_size = query.number("page_size", 50, minimum=1, maximum=MAX_PAGE_SIZE)
        status = (query.text("status") or "").upper() or None
        path = query.text("path") or None
        parent = query.identifier("parent")
        if status is not None and status not in STATUSES:
            problems.add("enum", ["query", "status"], f"Input should be one of {sorted(STATUSES)}", status)
        problems.check()
        wanted = ListQuery(page=page, page_size=page_size, status=status, path=path, parent=parent)
        return json_response(await list_page(self._execution, wanted, self._timeout))

    async def stream(self, request: Request) -> Response:
        """The execution's events as Server-Sent Events in the console's compact form (`events.py`)."""
        return await self._stream.respond(request, console_event, typed=False)
