"""MTTA and MTTR per severity and week, computed by the state database (the sandbox's PostgreSQL) from incidents
of a week in 2019 with known times (no other test has incidents then), and the durations as the page writes them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from tradeops.incidents.response_times import ResponseTime, readable_duration, weeks_up_to

NOW = datetime(2019, 3, 14, 12, 0, tzinfo=UTC)  # a Thursday: its ISO week starts on Monday 11 March
THIS_WEEK, LAST_WEEK, FIRST_WEEK = date(2019, 3, 11), date(2019, 3, 4), date(2019, 1, 21)


def at(day: date, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


def seconds(n: int) -> timedelta:
    return timedelta(seconds=n)


def test_the_eight_weeks_are_iso_weeks_in_utc_ending_with_now():
    assert weeks_up_to(NOW) == [FIRST_WEEK + timedelta(weeks=n) for n in range(8)]
    assert weeks_up_to(NOW)[-1] == THIS_WEEK
    sunday_night_in_utc = datetime(2019, 3, 11, 1, 0, tzinfo=timezone(timedelta(hours=2)))  # Monday, at UTC+2
    assert weeks_up_to(sunday_night_in_utc)[-1] == LAST_WEEK
    assert weeks_up_to(at(THIS_WEEK))[-1] == THIS_WEEK


def test_means_medians_and_counts_per_severity_and_week(incidents, past_incidents):
    p1 = [  # last week: acknowledged after 1, 2 and 7 minutes; resolved after 10, 20 and 50
        (at(LAST_WEEK, 9), seconds(60), seconds(600)),
        (at(LAST_WEEK + timedelta(days=2), 23, 59, 30), seconds(120), None),  # acknowledged, still open
        (at(LAST_WEEK + timedelta(days=3), 14), None, seconds(1200)),  # resolved without an acknowledgement
        (at(THIS_WEEK - timedelta(days=1), 23, 59, 59), seconds(420), seconds(3000)),  # its last second
        (at(LAST_WEEK + timedelta(days=4), 8), None, None),  # still open: in neither figure
    ]
    for opened_at, acknowledged_after, resolved_after in p1:
        past_incidents("P1", opened_at, acknowledged_after, resolved_after)
    past_incidents("P1", at(THIS_WEEK), seconds(30), seconds(90))  # this week's first second
    for resolved_after in (60, 120, 300, 3600):  # four P3s: the median falls between 120 and 300
        past_incidents("P3", at(LAST_WEEK, 10), seconds(20) if resolved_after < 200 else None, seconds(resolved_after))
    past_incidents("P2", at(FIRST_WEEK), seconds(5), seconds(50))  # the window's first second
    past_incidents("P1", at(FIRST_WEEK) - seconds(1), seconds(5), seconds(5))  # before the window
    past_incidents("P1", at(THIS_WEEK + timedelta(weeks=1)), seconds(5), seconds(5))  # after it

    measured = incidents.response_times(NOW)

    assert measured.weeks == weeks_up_to(NOW)
    assert sorted(measured.cells, key=lambda cell: (cell.week, cell.severity)) == [
        ResponseTime("P2", FIRST_WEEK, 1, 1, 5.0, 5.0, 1, 50.0, 50.0),
        ResponseTime("P1", LAST_WEEK, 5, 3, 200.0, 120.0, 3, 1600.0, 1200.0),
        ResponseTime("P3", LAST_WEEK, 4, 2, 20.0, 20.0, 4, 1020.0, 210.0),
        ResponseTime("P1", THIS_WEEK, 1, 1, 30.0, 30.0, 1, 90.0, 90.0),
    ]
    rows = dict(measured.by_severity())
    assert list(rows) == ["P1", "security", "P2", "P3", "P4"], "most severe first"
    assert [cell and cell.opened for cell in rows["P1"]] == [None] * 6 + [5, 1], "one cell per week, oldest first"
    assert rows["security"] == [None] * 8


@pytest.mark.parametrize(
    ("duration", "reads"),
    [
        (0, "0s"),
        (45, "45s"),
        (59.4, "59s"),
        (59.6, "1m"),
        (60, "1m"),
        (12 * 60 + 59, "12m"),
        (3599, "59m"),
        (3600, "1h"),
        (3 * 3600 + 5 * 60 + 30, "3h 5m"),
        (23 * 3600 + 59 * 60 + 59, "23h 59m"),
        (86400, "1d"),
        (2 * 86400 + 4 * 3600 + 59 * 60, "2d 4h"),
        (40 * 86400, "40d"),
    ],
)
def test_durations_read_as_people_say_them(duration, reads):
    assert readable_duration(duration) == reads
