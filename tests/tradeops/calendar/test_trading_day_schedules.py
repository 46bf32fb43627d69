"""The trading day's schedules, as ``tradeops.yaml`` declares them, against ``exchange_calendars`` for 2026-2029:
startup at open - 60 min, the watch from each open (inside the session), shutdown at close + 30 min (early closes
included) and the report after every session's close."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import exchange_calendars
import pendulum
import pytest
from airflow.timetables.base import TimeRestriction

from tradeops.calendar.timetable import ExchangeSessionTimetable

NY = ZoneInfo("America/New_York")
START, END = datetime(2026, 1, 1, tzinfo=UTC), datetime(2029, 12, 31, 23, 59, tzinfo=UTC)


@pytest.fixture(scope="module")
def xnys():
    calendar = exchange_calendars.get_calendar("XNYS", start="2026-01-01", end="2029-12-31")
    return {
        "sessions": [ts.date() for ts in calendar.sessions],
        "opens": [ts.to_pydatetime() for ts in calendar.opens],
        "closes": [ts.to_pydatetime() for ts in calendar.closes],
        "early_closes": {ts.date() for ts in calendar.early_closes},
    }


def runs_of(config, dag_id: str) -> list[datetime]:
    timetable = ExchangeSessionTimetable(config.schedules[dag_id], config.platform.exchange)
    restriction = TimeRestriction(earliest=pendulum.instance(START), latest=pendulum.instance(END), catchup=True)
    runs, last = [], None
    while info := timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction):
        runs.append(info.run_after)
        last = info.data_interval
    return runs


def test_pre_market_startup_an_hour_before_every_open(config, xnys):
    runs = runs_of(config, "pre_market_startup")
    assert runs == [o - timedelta(minutes=60) for o in xnys["opens"]]
    assert [r.astimezone(NY).date() for r in runs] == xnys["sessions"]
    assert {r.astimezone(NY).strftime("%H:%M") for r in runs} == {"08:30"}, "not the seed's 08:00 open minus an hour"


def test_the_watch_starts_at_every_open_and_only_inside_sessions(config, xnys):
    runs = runs_of(config, "market_hours_watch")
    assert runs == xnys["opens"]
    assert all(o <= r < c for r, o, c in zip(runs, xnys["opens"], xnys["closes"], strict=True))


def test_post_market_shutdown_half_an_hour_after_every_close(config, xnys):
    runs = runs_of(config, "post_market_shutdown")
    assert runs == [c + timedelta(minutes=30) for c in xnys["closes"]]
    early = {r.astimezone(NY).date() for r in runs if r.astimezone(NY).strftime("%H:%M") == "13:30"}
    assert early == xnys["early_closes"] and len(early) >= 8


def test_the_ops_report_after_every_session(config, xnys):
    runs = runs_of(config, "daily_ops_report")
    assert runs == [c + timedelta(minutes=60) for c in xnys["closes"]]
    assert len(runs) == len(xnys["sessions"]) > 1000


def test_the_security_check_at_six_new_york_time_before_every_session(config, xnys):
    runs = runs_of(config, "daily_security_check")
    assert [r.astimezone(NY).date() for r in runs] == xnys["sessions"]  # no holiday, every session
    assert {r.astimezone(NY).strftime("%H:%M") for r in runs} == {"06:00"}  # through both DST changes
    startup = runs_of(config, "pre_market_startup")
    assert all(s - r == timedelta(hours=2, minutes=30) for r, s in zip(runs, startup, strict=True))
