"""The statuses an execution reports (dsl.md §15.1, http-api.md §13.2): one spelling for the
engine's status rules, the projection, the gateway's views and the launcher's progress."""

from __future__ import annotations

RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
TERMINAL_STATUSES = frozenset({COMPLETED, FAILED, CANCELLED})
