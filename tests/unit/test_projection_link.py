"""Linking projected envelopes into their executions' chains (services/events/projection.py)."""

from __future__ import annotations

from services.events.projection import Envelope, link

A = 10
B = 20


def test_new_envelopes_link_to_the_newest_event_and_known_ones_are_duplicates() -> None:
    heads = {A: 100}
    batch = [Envelope(event_id=101, execution_id=A), Envelope(event_id=100, execution_id=A),
             Envelope(event_id=102, execution_id=A), Envelope(event_id=101, execution_id=A)]  # fmt: skip
    projection = link(batch, heads, existing={(A, 100)})
    assert [(e.event_id, e.prev_event_id) for e in projection.new] == [(101, 100), (102, 101)]
    assert projection.duplicates == 2
    assert heads == {A: 102}


def test_an_explicit_prev_event_id_wins_and_a_new_execution_starts_without_one() -> None:
    heads: dict[int, int] = {}
    batch = [Envelope(event_id=1, execution_id=B), Envelope(event_id=3, execution_id=B, prev_event_id=1),
             Envelope(event_id=2, execution_id=B)]  # fmt: skip
    projection = link(batch, heads, existing=set())
    # An older id arriving late links to the head but does not move it back.
    assert [(e.event_id, e.prev_event_id) for e in projection.new] == [(1, None), (3, 1), (2, 3)]
    assert heads == {B: 3}


def test_the_same_event_id_in_two_executions_is_two_events() -> None:
    projection = link([Envelope(event_id=5, execution_id=A), Envelope(event_id=5, execution_id=B)], {}, set())
    assert len(projection.new) == 2
    assert projection.duplicates == 0
