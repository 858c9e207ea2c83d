"""A command row's status as one state machine (data-model.md §5, §6).

`TRANSITIONS` is the only place the statuses and their moves are spelled: the claim protocol,
the lifecycle projection (its fold and its SQL guard), the reaper's queries and the open-command
count all derive their sets and SQL fragments from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum


class CommandStatus(StrEnum):
    PENDING = "PENDING"
    CLAIMED = "CLAIMED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


PENDING, CLAIMED, RUNNING = CommandStatus.PENDING, CommandStatus.CLAIMED, CommandStatus.RUNNING
COMPLETED, FAILED, CANCELLED = CommandStatus.COMPLETED, CommandStatus.FAILED, CommandStatus.CANCELLED

# Where a row may go from each status; a status listed under itself may be written again (a
# duplicate `command.started`, a stale claim taken over by another worker). Reaching the
# worker's outcome before its claim or start is allowed: the projection sees events in any order.
TRANSITIONS: Mapping[CommandStatus, frozenset[CommandStatus]] = {
    PENDING: frozenset({CLAIMED, RUNNING, COMPLETED, FAILED, CANCELLED}),
    CLAIMED: frozenset({CLAIMED, RUNNING, COMPLETED, FAILED, CANCELLED}),
    # A stale holder's claim is taken over: back to CLAIMED for the new holder.
    RUNNING: frozenset({CLAIMED, RUNNING, COMPLETED, FAILED, CANCELLED}),
    # A terminal status is never downgraded, nor replaced by another terminal one.
    COMPLETED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}

INITIAL = PENDING
TERMINAL = frozenset(status for status, moves in TRANSITIONS.items() if not moves)
OPEN = frozenset(TRANSITIONS) - TERMINAL
# A worker holds the command under a lease (data-model.md §6.2, §6.3): what a claim leads to.
HELD = frozenset({CLAIMED, RUNNING})


def can_move(current: CommandStatus, target: CommandStatus) -> bool:
    return target in TRANSITIONS[current]


def sources(target: CommandStatus) -> frozenset[CommandStatus]:
    """Every status a row may move to `target` from."""
    return frozenset(status for status, moves in TRANSITIONS.items() if target in moves)


def sql_list(statuses: Iterable[CommandStatus]) -> str:
    """`'A', 'B'` for `status IN (...)`, in declaration order (so partial indexes match)."""
    chosen = set(statuses)
    return ", ".join(f"'{status.value}'" for status in CommandStatus if status in chosen)
