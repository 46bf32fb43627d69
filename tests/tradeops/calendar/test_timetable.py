"""ExchangeSessionTimetable against exchange_calendars itself, for every XNYS session from 2020 through 2030."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import exchange_calendars
import pendulum
import pytest
import time_machine
from airflow.timetables.base import DataInterval, TimeRestriction

from tradeops.calendar.sessions import _table, sessions_for
from tradeops.calendar.timetable import ExchangeSessionTimetable
from tradeops.exceptions import OutsideCalendarError

NY = ZoneInfo("America/New_York")
START, END = datetime(2020, 1, 1, tzinfo=UTC), datetime(2030, 12, 31, 23, 59, tzinfo=UTC)


@pytest.fixture(scope="module")
def xnys():
    """The independent source of truth: exchange_calendars' own sessions."""
    calendar = exchange_calendars.get_calendar("XNYS", start="2020-01-01", end="2030-12-31")
    return {
        "sessions": [ts.date() for ts in calendar.sessions],
        "opens": [ts.to_pydatetime() for ts in calendar.opens],
        "closes": [ts.to_pydatetime() for ts in calendar.closes],
        "early_closes": {ts.date() for ts in calendar.early_closes},
    }


def all_runs(timetable, start=START, end=END, catchup=True) -> list[datetime]:
    restriction = TimeRestriction(earliest=pendulum.instance(start), latest=pendulum.instance(end), catchup=catchup)
    runs, last = [], None
    while info := timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction):
        runs.append(info.run_after)
        last = info.data_interval
    return runs


def local(moment: datetime) -> datetime:
    return moment.astimezone(NY)


def test_open_anchored_runs_match_every_session_2020_2030(xnys):
    runs = all_runs(ExchangeSessionTimetable({"anchor": "open", "offset": "-90m"}))
    assert runs == [o - timedelta(minutes=90) for o in xnys["opens"]]
    assert len(runs) == len(xnys["sessions"]) > 2700
    assert [local(r).date() for r in runs] == xnys["sessions"], "holidays and weekends are skipped"
    assert {local(r).strftime("%H:%M") for r in runs} == {"08:00"}, "08:00 New York time through every DST change"


def test_close_anchored_runs_follow_early_closes(xnys):
    runs = all_runs(ExchangeSessionTimetable({"anchor": "close", "offset": "30m"}))
    assert runs == [c + timedelta(minutes=30) for c in xnys["closes"]]
    early = {local(r).date() for r in runs if local(r).strftime("%H:%M") == "13:30"}
    assert early == xnys["early_closes"] and len(early) >= 20
    assert {local(r).strftime("%H:%M") for r in runs} == {"16:30", "13:30"}


@pytest.mark.parametrize(
    ("day", "trading"),
    [
        (date(2024, 3, 29), False),  # Good Friday: closed (not a federal holiday)
        (date(2024, 10, 14), True),  # Columbus Day: open (a federal holiday)
        (date(2024, 11, 11), True),  # Veterans Day: open (a federal holiday)
        (date(2024, 11, 28), False),  # Thanksgiving
        (date(2025, 1, 20), False),  # Martin Luther King Jr. Day (a Monday after a weekend)
        (date(2025, 1, 9), False),  # National Day of Mourning for President Carter
    ],
)
def test_specific_days(day, trading):
    runs = {
        local(r).date()
        for r in all_runs(
            ExchangeSessionTimetable({"anchor": "open"}),
            datetime(2024, 1, 1, tzinfo=UTC),
            datetime(2025, 12, 31, tzinfo=UTC),
        )
    }
    assert (day in runs) is trading


@pytest.mark.parametrize(
    ("day", "close"),
    [
        (date(2024, 11, 29), "13:00"),  # day after Thanksgiving
        (date(2024, 12, 24), "13:00"),  # Christmas Eve
        (date(2025, 7, 3), "13:00"),  # the day before Independence Day
        (date(2024, 11, 27), "16:00"),
    ],
)
def test_early_closes(day, close):
    table = sessions_for("XNYS")
    assert local(table.session_on(day).close).strftime("%H:%M") == close
    timetable = ExchangeSessionTimetable({"anchor": "close"})
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    assert local(all_runs(timetable, start, start + timedelta(days=1))[0]).strftime("%H:%M") == close


def test_a_weekend_followed_by_a_monday_holiday():
    timetable = ExchangeSessionTimetable({"anchor": "open", "offset": "-90m"})
    friday = datetime(2025, 1, 17, 13, 0, tzinfo=UTC)
    info = timetable.next_dagrun_info(
        last_automated_data_interval=DataInterval(friday, friday),
        restriction=TimeRestriction(earliest=friday, latest=None, catchup=True),
    )
    assert local(info.run_after) == datetime(2025, 1, 21, 8, 0, tzinfo=NY)  # Tuesday after MLK day


def test_dst_transitions_keep_the_local_clock():
    timetable = ExchangeSessionTimetable({"anchor": "open", "offset": "-90m"})
    runs = all_runs(timetable, datetime(2026, 3, 5, tzinfo=UTC), datetime(2026, 3, 11, tzinfo=UTC))
    assert [r.strftime("%m-%d %H:%M") for r in runs] == [
        "03-05 13:00",
        "03-06 13:00",
        "03-09 12:00",
        "03-10 12:00",
    ]  # UTC shifts by an hour, New York does not
    autumn = all_runs(timetable, datetime(2026, 10, 29, tzinfo=UTC), datetime(2026, 11, 4, tzinfo=UTC))
    assert [r.strftime("%m-%d %H:%M") for r in autumn] == ["10-29 12:00", "10-30 12:00", "11-02 13:00", "11-03 13:00"]


# --- catchup and manual runs ---------------------------------------------------------------------------------

HEALTH = {"anchor": "open", "offset": "-90m"}


def first_health_run_without_catchup():
    """The first run of an open − 90 min DAG that starts with ``catchup=False`` (now is frozen by the test)."""
    return ExchangeSessionTimetable(HEALTH).next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=pendulum.datetime(2026, 1, 1), latest=None, catchup=False),
    )


@time_machine.travel(datetime(2026, 11, 23, 3, 0, tzinfo=UTC), tick=False)
def test_catchup_false_first_run_is_the_next_event():
    info = first_health_run_without_catchup()
    assert info.run_after == datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    assert info.logical_date == info.run_after and info.data_interval.start == info.data_interval.end


@time_machine.travel(datetime(2026, 11, 23, 13, 0, tzinfo=UTC), tick=False)
def test_catchup_false_at_the_exact_due_time_runs_it():
    info = first_health_run_without_catchup()
    assert info.run_after == datetime(2026, 11, 23, 13, 0, tzinfo=UTC)


@time_machine.travel(datetime(2026, 11, 23, 15, 0, tzinfo=UTC), tick=False)
def test_after_an_outage_catchup_false_runs_the_latest_missed_once_and_catchup_true_the_backlog():
    last = DataInterval(pendulum.datetime(2026, 11, 18, 13), pendulum.datetime(2026, 11, 18, 13))
    timetable = ExchangeSessionTimetable(HEALTH)
    earliest = pendulum.datetime(2026, 1, 1)
    skip = timetable.next_dagrun_info(
        last_automated_data_interval=last, restriction=TimeRestriction(earliest=earliest, latest=None, catchup=False)
    )
    backlog = timetable.next_dagrun_info(
        last_automated_data_interval=last, restriction=TimeRestriction(earliest=earliest, latest=None, catchup=True)
    )
    assert skip.run_after == datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    assert backlog.run_after == datetime(2026, 11, 19, 13, 0, tzinfo=UTC)


def test_end_date_and_no_start_date():
    timetable = ExchangeSessionTimetable(HEALTH)
    restriction = TimeRestriction(
        earliest=pendulum.datetime(2026, 1, 1), latest=pendulum.datetime(2026, 1, 2, 13), catchup=True
    )
    first = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    assert first.run_after == datetime(2026, 1, 2, 13, 0, tzinfo=UTC)  # Jan 1 is a holiday
    late = TimeRestriction(
        earliest=pendulum.datetime(2026, 1, 1), latest=pendulum.datetime(2026, 1, 2, 12, 59), catchup=True
    )
    assert timetable.next_dagrun_info(last_automated_data_interval=None, restriction=late) is None
    none = TimeRestriction(earliest=None, latest=None, catchup=True)
    assert timetable.next_dagrun_info(last_automated_data_interval=None, restriction=none) is None


def test_manual_runs_are_points_in_time():
    moment = pendulum.datetime(2026, 11, 23, 17, 42, 7)
    assert ExchangeSessionTimetable(HEALTH).infer_manual_data_interval(run_after=moment) == DataInterval(moment, moment)


# --- clock anchors, session filters -------------------------------------------------------------------------


def test_weekly_maintenance_window_sunday_0200_new_york_across_dst():
    timetable = ExchangeSessionTimetable({"anchor": "clock", "at": "02:00", "days": ["sun"]})
    runs = all_runs(timetable, datetime(2026, 2, 28, tzinfo=UTC), datetime(2026, 3, 16, tzinfo=UTC))
    assert [local(r).strftime("%a %m-%d %H:%M %Z") for r in runs] == [
        "Sun 03-01 02:00 EST",
        "Sun 03-08 03:00 EDT",  # 02:00 does not exist that night: it runs when the clock says 03:00, as cron does
        "Sun 03-15 02:00 EDT",
    ]
    autumn = all_runs(timetable, datetime(2026, 10, 31, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))
    assert [local(r).strftime("%a %m-%d %H:%M %Z") for r in autumn] == ["Sun 11-01 02:00 EST"]


def test_clock_anchor_skips_times_when_the_exchange_is_open():
    timetable = ExchangeSessionTimetable(
        {"anchor": "clock", "at": "10:00", "days": ["mon", "tue", "wed", "thu", "fri"]}
    )
    runs = all_runs(timetable, datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC))
    assert [local(r).date() for r in runs] == [date(2026, 11, 26), date(2026, 12, 25)]  # Thanksgiving, Christmas
    anytime = ExchangeSessionTimetable({"anchor": "clock", "at": "10:00", "days": ["mon"], "when_closed": False})
    assert len(all_runs(anytime, datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))) == 2


def test_first_trading_day_of_the_month_and_last_of_the_week():
    monthly = ExchangeSessionTimetable({"anchor": "open", "offset": "30m", "sessions": "first_of_month"})
    runs = all_runs(monthly, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC))
    assert len(runs) == 12
    assert local(runs[0]) == datetime(2026, 1, 2, 10, 0, tzinfo=NY)  # New Year's Day is a holiday
    assert local(runs[8]).date() == date(2026, 9, 1)
    weekly = ExchangeSessionTimetable({"anchor": "close", "sessions": "last_of_week"})
    good_friday_week = all_runs(weekly, datetime(2026, 3, 30, tzinfo=UTC), datetime(2026, 4, 4, tzinfo=UTC))
    assert [local(r).date() for r in good_friday_week] == [date(2026, 4, 2)]  # Thursday: Good Friday is closed


# --- UI, serialization, cost -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "summary"),
    [
        ({"anchor": "open", "offset": "-90m"}, "90 min before XNYS open"),
        ({"anchor": "close", "offset": "30m"}, "30 min after XNYS close"),
        ({"anchor": "close", "offset": "3h"}, "3 h after XNYS close"),
        ({"anchor": "open"}, "at XNYS open"),
        (
            {"anchor": "open", "offset": "30m", "sessions": "first_of_month"},
            "30 min after XNYS open, first session of each month",
        ),
        ({"anchor": "clock", "at": "02:00", "days": ["sun"]}, "02:00 XNYS local time, on Sun, when XNYS is closed"),
    ],
)
def test_summary_and_round_trip(spec, summary):
    timetable = ExchangeSessionTimetable(spec)
    assert timetable.summary == summary
    again = ExchangeSessionTimetable.deserialize(timetable.serialize())
    assert again == timetable and again.summary == summary


def test_the_calendar_is_built_once_per_process():
    sessions_for("XNYS")
    before = _table.cache_info()
    timetable = ExchangeSessionTimetable(HEALTH)
    for _ in range(50):
        timetable.next_dagrun_info(
            last_automated_data_interval=None,
            restriction=TimeRestriction(earliest=pendulum.datetime(2026, 1, 1), latest=None, catchup=True),
        )
    assert _table.cache_info().misses == before.misses


def test_outside_the_calendar_is_an_error_that_says_so():
    with pytest.raises(OutsideCalendarError, match="outside the XNYS calendar built for 2015-01-01"):
        sessions_for("XNYS").next_event("open", timedelta(0), datetime(2045, 1, 1, tzinfo=UTC), inclusive=True)


def test_the_session_cache_file_is_exact(tmp_path, monkeypatch):
    """A table read back from the JSON cache equals one built from exchange_calendars."""
    from tradeops.calendar.sessions import SessionTable, _cache_path

    monkeypatch.setenv("TRADEOPS_CACHE_DIR", str(tmp_path))
    first, last = date(2024, 1, 1), date(2025, 12, 31)
    built = SessionTable.build("XNYS", first, last)
    assert _cache_path("XNYS", first, last).exists()
    cached = SessionTable.build("XNYS", first, last)
    assert cached.sessions == built.sessions and cached.tz == built.tz == "America/New_York"
    _cache_path("XNYS", first, last).write_text("{not json")
    assert SessionTable.build("XNYS", first, last).sessions == built.sessions, "a corrupt cache is rebuilt"


NY = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("moment", "current_or_next", "current_or_previous"),
    [
        (datetime(2026, 11, 30, 8, 30, tzinfo=NY), date(2026, 11, 30), date(2026, 11, 27)),  # pre-market
        (datetime(2026, 11, 30, 12, 0, tzinfo=NY), date(2026, 11, 30), date(2026, 11, 30)),  # open
        (datetime(2026, 11, 30, 16, 30, tzinfo=NY), date(2026, 12, 1), date(2026, 11, 30)),  # post-market
        (datetime(2026, 11, 28, 10, 0, tzinfo=NY), date(2026, 11, 30), date(2026, 11, 27)),  # Saturday
        (datetime(2026, 11, 27, 13, 30, tzinfo=NY), date(2026, 11, 30), date(2026, 11, 27)),  # after an early close
        (datetime(2026, 12, 25, 9, 0, tzinfo=NY), date(2026, 12, 28), date(2026, 12, 24)),  # Christmas
    ],
)
def test_the_session_a_run_is_for(moment, current_or_next, current_or_previous):
    table = sessions_for("XNYS")
    assert table.current_or_next(moment.astimezone(UTC)).day == current_or_next
    assert table.current_or_previous(moment.astimezone(UTC)).day == current_or_previous
