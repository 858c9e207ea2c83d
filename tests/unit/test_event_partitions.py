"""The quarters the event service keeps partitions for (data-model.md §3.3)."""

from __future__ import annotations

import itertools
from datetime import date

from services.events.partitions import quarters


def test_the_quarters_ahead_of_today_match_the_spec_table() -> None:
    found = quarters(date(2026, 12, 7), ahead=4)
    assert [(q.name, q.lower, q.upper) for q in found] == [
        ("event_2026_q4", 363837417062400000, 397177100697600000),
        ("event_2027_q1", 397177100697600000, 429792008601600000),
        ("event_2027_q2", 429792008601600000, 462769304371200000),
        ("event_2027_q3", 462769304371200000, 496108988006400000),
        ("event_2027_q4", 496108988006400000, 529448671641600000),
    ]


def test_quarters_cross_years_without_gaps() -> None:
    found = quarters(date(2027, 11, 30), ahead=6)
    assert [q.name for q in found] == [
        "event_2027_q4",
        "event_2028_q1",
        "event_2028_q2",
        "event_2028_q3",
        "event_2028_q4",
        "event_2029_q1",
        "event_2029_q2",
    ]
    assert found[0].lower == 496108988006400000
    for before, after in itertools.pairwise(found):
        assert before.upper == after.lower > before.lower


def test_the_first_and_last_day_of_a_quarter_are_in_it() -> None:
    assert quarters(date(2028, 4, 1), ahead=0)[0].name == "event_2028_q2"
    assert quarters(date(2028, 6, 30), ahead=0)[0].name == "event_2028_q2"
