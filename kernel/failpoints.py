"""Deterministic failpoints: crash a process at a named point, for the fault suite.

`NOETL_FAILPOINTS="name=action[@hit],..."` arms points at start-up; `action` is `exit` (the
process dies at once, as a SIGKILL would leave it: no cleanup, no flush) or `raise` (the code
path fails with `FailpointError`). `@hit` fires on that hit of the point (default the first).
In-process tests can also `arm()` a point reached by `await pause()` with `hold`: that task then
waits there until `release()`, so a test can act inside a window deterministically.
Unset, `hit()` is a dictionary look-up on an empty dict. Never set in production.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Mapping

log = logging.getLogger(__name__)

EXIT_CODE = 86


class FailpointError(RuntimeError):
    pass


class _Armed:
    __slots__ = ("action", "at", "seen")

    def __init__(self, action: str, at: int) -> None:
        self.action = action
        self.at = at
        self.seen = 0


_armed: dict[str, _Armed] = {}
_gates: dict[str, asyncio.Event] = {}


def arm(spec: str) -> None:
    """Parses a `NOETL_FAILPOINTS` value; raises ValueError naming a malformed entry."""
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        name, _, rest = entry.partition("=")
        action, _, at = rest.partition("@")
        if not name or action not in ("exit", "raise", "hold") or (at and not at.isdigit()):
            raise ValueError(f"malformed failpoint {entry!r}: expected name=exit|raise|hold[@N]")
        _armed[name] = _Armed(action, int(at or 1))


def arm_from(environ: Mapping[str, str]) -> None:
    spec = environ.get("NOETL_FAILPOINTS", "")
    if spec:
        arm(spec)
        log.warning("failpoints armed: %s", spec)


def armed(name: str) -> bool:
    """For a point whose condition costs something to work out: skip it when unarmed."""
    return name in _armed


def hit(name: str) -> None:
    """A point in synchronous code: `hold` cannot wait here and is ignored."""
    action = _fires(name)
    if action in ("exit", "raise"):
        _act(name, action)


async def pause(name: str) -> None:
    """A point in a coroutine: as `hit`, and armed with `hold` it waits for `release(name)`."""
    action = _fires(name)
    if action == "hold":
        log.warning("failpoint %s: holding", name)
        await _gates.setdefault(name, asyncio.Event()).wait()
    elif action is not None:
        _act(name, action)


def release(name: str) -> None:
    """Lets every task held at `name` go on, and any that reaches it later pass at once."""
    _gates.setdefault(name, asyncio.Event()).set()


def disarm() -> None:
    _armed.clear()
    for gate in _gates.values():
        gate.set()  # nothing stays held by a point that is no longer armed
    _gates.clear()


def _fires(name: str) -> str | None:
    """The action of this hit of `name`, or None when it does not fire."""
    point = _armed.get(name)
    if point is None:
        return None
    point.seen += 1
    return point.action if point.seen == point.at else None


def _act(name: str, action: str) -> None:
    if action == "exit":
        print(f"failpoint {name}: exiting", file=sys.stderr, flush=True)
        os._exit(EXIT_CODE)
    raise FailpointError(f"failpoint {name}")
