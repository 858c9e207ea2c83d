"""Stand-ins for mesh processes, for supervisor tests: `python -m tests.helpers.fake_process KIND`.

Each records its pid and environment in $NOETL_RUN_DIR/fake-<NOETL_SERVER_MACHINE_ID>.json,
then behaves as KIND says:
  grpc      serves grpc.health.v1 SERVING on $NOETL_GRPC_LISTEN until SIGTERM
  http      serves GET /health -> 200 on 127.0.0.1:$NOETL_PORT until SIGTERM
  sleep     idles until SIGTERM
  crash     raises an exception shortly after starting
  traceback logs a traceback, then idles
  stubborn  ignores SIGTERM (only SIGKILL stops it)
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import sys
import threading
import time
import traceback
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def record_path(run_dir: Path, machine_id: int) -> Path:
    return run_dir / f"fake-{machine_id}.json"


@dataclass(frozen=True)
class FakeRecord:
    pid: int
    env: dict[str, str]


def load_record(run_dir: Path, machine_id: int, within: float = 10.0) -> FakeRecord:
    """The fake's record, once it has written it: a process the launcher counts as ready (alive
    for a moment) may not have got that far yet on a loaded machine."""
    path = record_path(run_dir, machine_id)
    deadline = time.monotonic() + within
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    data = json.loads(path.read_text())
    return FakeRecord(int(data["pid"]), dict(data["env"]))


def _until_sigterm() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    stop.wait()


def _serve_grpc() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port(os.environ["NOETL_GRPC_LISTEN"])
    server.start()
    _until_sigterm()
    server.stop(0)


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: request lines would bury what a test wants to read in the log."""


def _serve_http() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["NOETL_PORT"])), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _until_sigterm()
    server.shutdown()
    server.server_close()


def _crash() -> None:
    time.sleep(0.2)
    raise RuntimeError("boom: the fake process failed at start")


def _traceback() -> None:
    try:
        raise ValueError("bad configuration")
    except ValueError:
        traceback.print_exc()
    _until_sigterm()


def _stubborn() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(1)


KINDS = {
    "grpc": _serve_grpc,
    "http": _serve_http,
    "sleep": _until_sigterm,
    "crash": _crash,
    "traceback": _traceback,
    "stubborn": _stubborn,
}


def main() -> None:
    run_dir = Path(os.environ["NOETL_RUN_DIR"])
    record = {"pid": os.getpid(), "env": dict(os.environ)}
    record_path(run_dir, int(os.environ["NOETL_SERVER_MACHINE_ID"])).write_text(json.dumps(record))
    KINDS[sys.argv[1]]()


if __name__ == "__main__":
    main()
