"""Route dispatch by path: a request is matched against the few routes its path can reach.

Starlette tries every route of the table in order, a regular expression each, until one matches:
some 130 routes (each endpoint under `/api` and `/noetl`), a tenth of the gateway's CPU
under event ingest went to failing matches. Which routes can match a path depends on the path
alone, so `IndexedRouter` remembers, per path, the routes whose pattern matches it (in table order)
and lets a router of just those answer: the first full match wins, else the first partial one
(405), exactly as over the whole table. A path no route matches takes Starlette's own way (its
slash redirect, then 404).
"""

from __future__ import annotations

# Starlette's own reading of the path routes match (root path removed), so both always agree.
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Router
from starlette.types import Receive, Scope, Send

# Paths remembered; a full memo is emptied and refilled, so hostile paths cost what they did.
MAX_PATHS = 4096


class IndexedRouter(Router):
    def __init__(self, routes: list[BaseRoute]) -> None:
        super().__init__(routes=routes)
        self._by_path: dict[str, Router | None] = {}

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().app(scope, receive, send)
            return
        narrowed = self._narrowed(get_route_path(scope))
        if narrowed is None:
            await super().app(scope, receive, send)
            return
        scope.setdefault("router", self)
        await narrowed.app(scope, receive, send)

    def _narrowed(self, path: str) -> Router | None:
        """A router of the routes that can match `path`; None when none can."""
        try:
            return self._by_path[path]
        except KeyError:
            pass
        candidates = [route for route in self.routes if _pattern_matches(route, path)]
        narrowed = Router(routes=candidates) if candidates else None
        if len(self._by_path) >= MAX_PATHS:
            self._by_path.clear()
        self._by_path[path] = narrowed
        return narrowed


def _pattern_matches(route: BaseRoute, path: str) -> bool:
    # A route without a path pattern (none in this table) stays a candidate of every path.
    pattern = getattr(route, "path_regex", None)
    return pattern is None or pattern.match(path) is not None
