"""Projecting trusted event envelopes into the log (http-api.md §12.5, data-model.md §4.4).

Pure: given what the log already holds for the envelopes' executions (their heads and which
`(execution_id, event_id)` pairs exist), decide which envelopes are new and link each to its
predecessor. The store runs this inside the transaction that holds the executions' locks, the
same locks appends take, so a projection and an append never interleave on one chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event as a trusted producer sent it; JSON fields are encoded text (None = SQL NULL)."""

    event_id: int
    execution_id: int = 0
    catalog_id: int = 0
    parent_event_id: int | None = None
    prev_event_id: int | None = None
    event_type: str | None = None
    node_id: str | None = None
    node_name: str | None = None
    node_type: str | None = None
    status: str | None = None
    duration: float | None = None
    created_at: datetime | None = None  # None: the insert's time
    context: str | None = None
    result: str | None = None
    meta: str | None = None
    error: str | None = None
    stack_trace: str | None = None
    trace_component: str | None = None


@dataclass(frozen=True, slots=True)
class Projection:
    new: list[Envelope]
    duplicates: int


def link(envelopes: Sequence[Envelope], heads: dict[int, int], existing: set[tuple[int, int]]) -> Projection:
    """The envelopes to insert, in input order, each with its `prev_event_id` decided.

    An envelope whose `(execution_id, event_id)` is stored already, or appeared earlier in the
    batch, is a duplicate. An explicit `prev_event_id` wins (data-model.md §4.3); otherwise the
    event links to the execution's newest event so far, and a newer id becomes the head.
    `heads` (execution → newest event id) is updated in place.
    """
    seen = set(existing)
    new: list[Envelope] = []
    for envelope in envelopes:
        key = (envelope.execution_id, envelope.event_id)
        if key in seen:
            continue
        seen.add(key)
        head = heads.get(envelope.execution_id)
        if head is None or envelope.event_id > head:
            heads[envelope.execution_id] = envelope.event_id
        if envelope.prev_event_id is None and head is not None:
            new.append(replace(envelope, prev_event_id=head))
        else:
            new.append(envelope)
    return Projection(new, len(envelopes) - len(new))
