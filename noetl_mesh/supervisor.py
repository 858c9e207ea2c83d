"""`python -m noetl_mesh.supervisor RUN_DIR`: restarts what crashed in a running local mesh.

`noetl-mesh up` starts one supervisor per run dir, in a session of its own, with the mesh's
environment. Every second it looks at the recorded stack; anything not running (a mesh process,
embedded Postgres or NATS) is started again on the ports it had (`Stack.repair`), with backoff
while a restart keeps failing (1 s doubling to 60 s). `noetl-mesh down` stops the supervisor
before anything else; with the stack's record gone it exits by itself.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

from noetl_mesh import state
from noetl_mesh.config import StackConfig
from noetl_mesh.errors import LauncherError
from noetl_mesh.stack import Health, Stack

log = logging.getLogger("noetl_mesh.supervisor")

INTERVAL = 1.0
MAX_BACKOFF = 60.0


def supervise(run_dir: Path) -> int:
    stopping = False

    def on_term(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    backoff = INTERVAL
    next_try = 0.0
    while not stopping:
        time.sleep(INTERVAL)
        info = state.load(run_dir)
        if info is None:
            break  # `down` ran
        stack = Stack(
            StackConfig(
                run_dir=run_dir,
                ports=info.ports,
                pg_dsn=None if info.postgres.embedded else info.pg_dsn,
                nats_url=None if info.nats.embedded else info.nats_url,
                base_env=dict(os.environ),
                supervise=False,  # this process is the supervisor
            )
        )
        if stack.status().health is Health.UP or time.monotonic() < next_try or stopping:
            continue
        try:
            stack.repair()
            backoff = INTERVAL
        except LauncherError as exc:
            backoff = min(backoff * 2, MAX_BACKOFF)
            next_try = time.monotonic() + backoff
            log.warning("repair failed (%s); next try in %.0fs", exc, backoff)
    return 0


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s supervisor: %(message)s")
    logging.getLogger("noetl_mesh").setLevel(logging.INFO)
    return supervise(Path(sys.argv[1]).resolve())


if __name__ == "__main__":
    sys.exit(main())
