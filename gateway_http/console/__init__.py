"""The web console: a single page served at `/ui` on the gateway's own port.

Hand-written HTML, CSS and JavaScript modules under `static/`, loaded into memory when the app
is built: no build step, no CDN, nothing for a user to install. The page reads the public
`/api` routes, plus two console routes under `/ui/api` that exist for the page alone: a filtered
execution list and a light event stream (`events.py`). `/ui` is kept out of the OpenAPI
document on purpose: it is a page and its private helpers, not part of the NoETL API.
"""

from gateway_http.console.routes import PREFIX, ConsoleRoutes

__all__ = ["PREFIX", "ConsoleRoutes"]
