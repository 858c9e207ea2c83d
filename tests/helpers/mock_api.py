"""The mock HTTP API of the pagination fixtures, written from shared/fixtures/README.md §5.

A small Starlette app served by uvicorn on 127.0.0.1 (a free port unless one is given), in a
thread of its own with its own event loop, so a test's loop blocking for a moment never stalls
it. Requests are served concurrently: a probe's delay is an `asyncio.sleep`.

Contract endpoints: `GET /health`, `GET /api/v1/users` (offset pagination), `GET
/api/v1/assessments` (page-number pagination), `POST /api/v1/concurrency/reset`, `GET
/api/v1/concurrency/stats`, `GET /api/v1/concurrency/probe`. The probe counters change only
under one lock, in sections without an await, so they are atomic.

Beyond the contract, for this project's own tests:
- `GET /api/v1/flaky?key=<k>&failures=<n>`: the first `n` calls with key `k` answer 500, later
  ones 200 `{"key", "calls", "status": "ok"}`.
- `GET|POST /api/v1/echo`: 200 with the request's method, query, headers and JSON body.
- `GET /api/v1/status/<code>`: answers that status with `{"status_code": <code>}`.

Run by hand: `python -m tests.helpers.mock_api 5555`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from noetl_mesh import procs

TOTAL_ITEMS = 35
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000
MAX_PROBE_DELAY = 300.0
RECENT_EVENTS = 200


class _Invalid(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


def _integer(request: Request, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _Invalid(name, "Input should be a valid integer") from None
    if not minimum <= value <= maximum:
        raise _Invalid(name, f"Input should be between {minimum} and {maximum}")
    return value


def _number(request: Request, name: str, default: float, minimum: float, maximum: float) -> float:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _Invalid(name, "Input should be a valid number") from None
    if not minimum <= value <= maximum:  # NaN fails too
        raise _Invalid(name, f"Input should be between {minimum:g} and {maximum:g}")
    return value


def _unprocessable(error: _Invalid) -> JSONResponse:
    return JSONResponse(
        {"detail": [{"loc": ["query", error.name], "msg": error.message, "type": "value_error"}]},
        status_code=422,
    )


class Probes:
    """The concurrency probe's counters and its bounded event log."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = 0
        self.completed = 0
        self.active = 0
        self.max_active = 0
        self.events: deque[dict[str, Any]] = deque(maxlen=RECENT_EVENTS)

    def counters(self) -> dict[str, int]:
        return {
            "started": self.started,
            "completed": self.completed,
            "active": self.active,
            "max_active": self.max_active,
        }


class MockApi:
    def __init__(self) -> None:
        self.probes = Probes()
        self._flaky: dict[str, int] = {}
        self.app = Starlette(
            routes=[
                Route("/health", self.health),
                Route("/api/v1/users", self.users),
                Route("/api/v1/assessments", self.assessments),
                Route("/api/v1/concurrency/reset", self.reset, methods=["POST"]),
                Route("/api/v1/concurrency/stats", self.stats),
                Route("/api/v1/concurrency/probe", self.probe),
                Route("/api/v1/flaky", self.flaky),
                Route("/api/v1/echo", self.echo, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
                Route("/api/v1/status/{code:int}", self.status),
            ]
        )

    async def health(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def users(self, request: Request) -> JSONResponse:
        try:
            offset = _integer(request, "offset", 0, 0, 1_000_000)
            limit = _integer(request, "limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        except _Invalid as exc:
            return _unprocessable(exc)
        ids = range(offset + 1, min(offset + limit, TOTAL_ITEMS) + 1)
        return JSONResponse(
            {
                "users": [{"id": i, "username": f"user{i}", "email": f"user{i}@example.com"} for i in ids],
                "has_more": offset + limit < TOTAL_ITEMS,
                "offset": offset,
                "limit": limit,
                "total": TOTAL_ITEMS,
            }
        )

    async def assessments(self, request: Request) -> JSONResponse:
        try:
            page = _integer(request, "page", 1, 1, 1_000_000)
            size = _integer(request, "pageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        except _Invalid as exc:
            return _unprocessable(exc)
        ids = range((page - 1) * size + 1, min(page * size, TOTAL_ITEMS) + 1)
        return JSONResponse(
            {
                "data": [{"id": i, "name": f"Assessment {i}", "score": 50 + (i % 50)} for i in ids],
                "paging": {
                    "hasMore": page * size < TOTAL_ITEMS,
                    "page": page,
                    "pageSize": size,
                    "total": TOTAL_ITEMS,
                },
            }
        )

    async def reset(self, request: Request) -> JSONResponse:
        probes = self.probes
        with probes.lock:
            probes.started = probes.completed = probes.active = probes.max_active = 0
            probes.events.clear()
        return JSONResponse({"status": "reset"})

    async def stats(self, request: Request) -> JSONResponse:
        probes = self.probes
        with probes.lock:
            body: dict[str, Any] = {**probes.counters(), "recent_events": list(probes.events)}
        return JSONResponse(body)

    async def probe(self, request: Request) -> JSONResponse:
        try:
            delay = _number(request, "delay_seconds", 0.0, 0.0, MAX_PROBE_DELAY)
        except _Invalid as exc:
            return _unprocessable(exc)
        label = request.query_params.get("label", "probe")
        probes = self.probes
        began = time.monotonic()
        with probes.lock:
            probes.started += 1
            request_id = probes.started
            probes.active += 1
            probes.max_active = max(probes.max_active, probes.active)
            active_at_start = probes.active
            probes.events.append(
                {
                    "phase": "start",
                    "request_id": request_id,
                    "label": label,
                    "delay_seconds": delay,
                    "ts": time.time(),
                    "active": probes.active,
                }
            )
        try:
            await asyncio.sleep(delay)
        finally:
            duration = round(time.monotonic() - began, 4)
            with probes.lock:
                probes.active = max(0, probes.active - 1)
                probes.completed += 1
                probes.events.append(
                    {
                        "phase": "end",
                        "request_id": request_id,
                        "label": label,
                        "duration_seconds": duration,
                        "ts": time.time(),
                        "active": probes.active,
                    }
                )
                counters = probes.counters()
        return JSONResponse(
            {
                "request_id": request_id,
                "label": label,
                "delay_seconds": delay,
                "duration_seconds": duration,
                "active_at_start": active_at_start,
                **counters,
            }
        )

    async def flaky(self, request: Request) -> JSONResponse:
        key = request.query_params.get("key", "default")
        try:
            failures = _integer(request, "failures", 1, 0, 1000)
        except _Invalid as exc:
            return _unprocessable(exc)
        with self.probes.lock:
            calls = self._flaky.get(key, 0) + 1
            self._flaky[key] = calls
        if calls <= failures:
            return JSONResponse({"key": key, "calls": calls, "status": "error"}, status_code=500)
        return JSONResponse({"key": key, "calls": calls, "status": "ok"})

    def flaky_calls(self, key: str) -> int:
        with self.probes.lock:
            return self._flaky.get(key, 0)

    async def echo(self, request: Request) -> JSONResponse:
        raw = await request.body()
        body: Any = None
        if raw:
            try:
                body = await request.json()
            except ValueError:
                body = raw.decode("utf-8", "replace")
        return JSONResponse(
            {
                "method": request.method,
                "query": dict(request.query_params),
                "headers": dict(request.headers),
                "body": body,
            }
        )

    async def status(self, request: Request) -> JSONResponse:
        code = int(request.path_params["code"])
        return JSONResponse({"status_code": code}, status_code=code)


@contextlib.contextmanager
def running_mock_api(port: int = 0) -> Iterator[tuple[str, MockApi]]:
    """Serves the mock on 127.0.0.1 in a background thread; yields its base URL and the app state."""
    api = MockApi()
    config = uvicorn.Config(
        api.app, host="127.0.0.1", port=port or procs.free_ports(1)[0], log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="mock-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the mock API did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{config.port}", api
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def main(argv: list[str]) -> int:
    port = int(argv[1]) if len(argv) > 1 else 5555
    uvicorn.run(MockApi().app, host="127.0.0.1", port=port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
