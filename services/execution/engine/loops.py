"""Loop bookkeeping (dsl.md §5, §12.7): the collection an `in` renders to, and the
progress of one loop activation as folded from its events.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.execution.engine.results import extract_user_data


class NotIterable(Exception):
    """`loop.in` rendered to null or a boolean."""

    def __init__(self, got: str) -> None:
        super().__init__(got)
        self.got = got


def coerce_items(value: Any) -> list[Any]:
    """The items of a rendered `loop.in` (dsl.md §5 table).

    Raises:
        NotIterable: the value is null or a boolean.
    """
    if value is None:
        raise NotIterable("null")
    if isinstance(value, bool):
        raise NotIterable("boolean")
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, Mapping):
        return [{"key": key, "value": item} for key, item in value.items()]
    if isinstance(value, int | float):
        return list(range(int(value)))
    text = str(value)
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, list):
        return parsed
    return [part.strip() for line in text.splitlines() for part in line.split(",") if part.strip()]


@dataclass(slots=True)
class LoopProgress:
    """One activation of a loop step, from its `step.enter` to its last iteration."""

    expected: int
    iterator: str
    issued: dict[int, int] = field(default_factory=dict)  # iteration index -> command id
    in_flight: set[int] = field(default_factory=set)  # command ids
    # Per iteration index: the user data (from `call.done`, else the completion event).
    data: dict[int, Any] = field(default_factory=dict)
    # Raw completion envelopes in arrival order (`steps.<loop step>`, §12.7).
    envelopes: list[Any] = field(default_factory=list)
    counted: set[int] = field(default_factory=set)  # command ids already counted
    failed: int = 0
    done_written: bool = False
    # One past the highest iteration index issued: kept as iterations are issued, so a pass never
    # scans what was issued before (its cost must not grow with the loop's progress).
    next_index: int = 0
    _aggregate: list[Any] | None = field(default=None, repr=False)

    @property
    def completed(self) -> int:
        return len(self.counted)

    @property
    def finished(self) -> bool:
        return self.completed >= self.expected

    def aggregate(self) -> list[Any]:
        """User data of every completed iteration, in iteration-index order (§12.7)."""
        # Every later pass reads a finished loop's aggregate; sort it once per new result.
        if self._aggregate is None:
            self._aggregate = [self.data[index] for index in sorted(self.data)]
        return self._aggregate

    def issue(self, index: int, command_id: int) -> None:
        """Iteration `index` was issued as command `command_id`."""
        self.issued[index] = command_id
        self.in_flight.add(command_id)
        self.next_index = max(self.next_index, index + 1)

    def count(self, command_id: int, index: int, envelope: Any, call_data: Any, has_call_data: bool) -> None:
        self.in_flight.discard(command_id)
        if command_id in self.counted:
            return
        self.counted.add(command_id)
        self._aggregate = None
        self.envelopes.append(envelope)
        self.data[index] = call_data if has_call_data else extract_user_data(envelope)
