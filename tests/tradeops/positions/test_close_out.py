"""The close-out's pure logic: when the book is read back, and the order's idempotency key."""

from __future__ import annotations

from datetime import timedelta

from tradeops.positions.operators import close_all_key, describe, read_back_delays


def test_read_backs_start_at_once_then_double_the_backoff():
    assert read_back_delays(5, timedelta(seconds=5)) == [0, 5, 10, 20, 40]
    assert sum(read_back_delays(5, timedelta(seconds=1))) == 15


def test_the_backoff_never_exceeds_a_minute():
    assert read_back_delays(8, timedelta(seconds=10)) == [0, 10, 20, 40, 60, 60, 60, 60]


def test_one_attempt_reads_once_without_waiting():
    assert read_back_delays(1, timedelta(seconds=5)) == [0]


def test_the_key_names_the_session_and_changes_with_the_run_and_the_try():
    key = close_all_key("2026-11-27", "scheduled__2026-11-27T18:30:00+00:00", 1)
    assert key == "close-all:2026-11-27:scheduled__2026-11-27T18:30:00+00:00:try1"
    assert key != close_all_key("2026-11-27", "scheduled__2026-11-27T18:30:00+00:00", 2)
    assert key != close_all_key("2026-11-27", "manual__2026-11-28T10:00:00+00:00", 1)


def test_positions_are_named_with_their_quantities():
    assert describe([{"symbol": "ES", "qty": 2.0}, {"symbol": "NQ", "qty": -3.0}]) == "ES 2, NQ -3"
