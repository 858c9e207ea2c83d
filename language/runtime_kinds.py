"""The kinds of `noetl.runtime` registrations (data-model.md §3.13), shared by the registry, the
gateway's pool routes and the worker that registers itself."""

from __future__ import annotations

WORKER_POOL = "worker_pool"
KINDS = (WORKER_POOL, "server_api", "broker", "scheduler", "monitor")
