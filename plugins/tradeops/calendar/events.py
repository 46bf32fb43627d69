"""Market events: the instants a market anchor (``tradeops.config`` ``SessionAnchor``/``ClockAnchor``) names.

``SessionEvents``: each (kept) session's open or close plus an offset. ``ClockEvents``: an exchange-local wall-clock
time on given weekdays, skipping occurrences while the exchange is open. Both answer "next at/after" and
"previous at/before" with exact UTC instants; the timetable, the deadline reference and the sensor share them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tradeops.calendar.sessions import SessionTable, sessions_for
from tradeops.config.model import WEEKDAYS, ClockAnchor, SessionAnchor
from tradeops.exceptions import OutsideCalendarError

_SESSION_WORDS = {
    "every": "",
    "first_of_week": ", first session of each week",
    "last_of_week": ", last session of each week",
    "first_of_month": ", first session of each month",
    "last_of_month": ", last session of each month",
}
_MAX_SCAN_DAYS = 400


def describe_offset(anchor: str, offset: timedelta, exchange: str) -> str:
    """``"90 min before XNYS open"``, ``"30 min after XNYS close"``, ``"2 h after XNYS close"``, ``"at XNYS open"``."""
    minutes = int(offset.total_seconds() // 60)
    if minutes == 0:
        return f"at {exchange} {anchor}"
    amount = f"{abs(minutes)} min" if abs(minutes) < 120 or abs(minutes) % 60 else f"{abs(minutes) // 60} h"
    return f"{amount} {'before' if minutes < 0 else 'after'} {exchange} {anchor}"


class MarketEvents:
    """The instants of one anchor on one exchange: ``next``, ``previous`` and ``describe``."""

    def __init__(self, spec: SessionAnchor | ClockAnchor, exchange: str):
        self.spec = spec
        self.exchange = exchange
        self._table: SessionTable | None = None

    @property
    def table(self) -> SessionTable:
        if self._table is None:  # built (or read from the cache) on first use, never at DAG parse time
            self._table = sessions_for(self.exchange)
        return self._table


class SessionEvents(MarketEvents):
    spec: SessionAnchor

    def next(self, after: datetime, *, inclusive: bool) -> datetime:
        spec = self.spec
        return self.table.next_event(spec.anchor, spec.offset, after, inclusive=inclusive, sessions=spec.sessions)[1]

    def previous(self, before: datetime) -> datetime | None:
        spec = self.spec
        found = self.table.previous_event(spec.anchor, spec.offset, before, sessions=spec.sessions)
        return found[1] if found else None

    def describe(self) -> str:
        return describe_offset(self.spec.anchor, self.spec.offset, self.exchange) + _SESSION_WORDS[self.spec.sessions]


class ClockEvents(MarketEvents):
    spec: ClockAnchor

    def __init__(self, spec: ClockAnchor, exchange: str):
        super().__init__(spec, exchange)
        hours, minutes = (int(part) for part in spec.at.split(":"))
        self.at = time(hours, minutes)
        self.weekdays = {WEEKDAYS.index(day) for day in spec.days}

    def _occurrence(self, day: date, tz: ZoneInfo) -> datetime:
        # A time skipped by a spring-forward change (02:30 on the second Sunday of March) runs at the same
        # offset as before the change, i.e. an hour later on the new clock, as cron does.
        return datetime.combine(day, self.at, tzinfo=tz).astimezone(UTC)

    def _wanted(self, moment: datetime, day: date) -> bool:
        return day.weekday() in self.weekdays and not (self.spec.when_closed and self.table.is_open(moment))

    def next(self, after: datetime, *, inclusive: bool) -> datetime:
        tz = ZoneInfo(self.table.tz)
        day = after.astimezone(tz).date() - timedelta(days=1)
        for _ in range(_MAX_SCAN_DAYS):
            moment = self._occurrence(day, tz)
            if (moment > after or (inclusive and moment == after)) and self._wanted(moment, day):
                return moment
            day += timedelta(days=1)
        raise OutsideCalendarError(f"no occurrence of {self.describe()} within {_MAX_SCAN_DAYS} days of {after}")

    def previous(self, before: datetime) -> datetime | None:
        tz = ZoneInfo(self.table.tz)
        day = before.astimezone(tz).date() + timedelta(days=1)
        for _ in range(_MAX_SCAN_DAYS):
            moment = self._occurrence(day, tz)
            if moment <= before and self._wanted(moment, day):
                return moment
            day -= timedelta(days=1)
        return None

    def describe(self) -> str:
        days = (
            "daily"
            if len(self.weekdays) == 7
            else "on " + ", ".join(d.capitalize() for d in WEEKDAYS if WEEKDAYS.index(d) in self.weekdays)
        )
        closed = f", when {self.exchange} is closed" if self.spec.when_closed else ""
        return f"{self.spec.at} {self.exchange} local time, {days}{closed}"


def events_for(spec: SessionAnchor | ClockAnchor | dict, exchange: str) -> SessionEvents | ClockEvents:
    """The events a market anchor (model or its dict form, e.g. from a serialized timetable) names."""
    if isinstance(spec, dict):
        spec = (ClockAnchor if spec.get("anchor") == "clock" else SessionAnchor).model_validate(spec)
    if isinstance(spec, ClockAnchor):
        return ClockEvents(spec, exchange)
    return SessionEvents(spec, exchange)


def anchor_to_dict(spec: SessionAnchor | ClockAnchor) -> dict:
    """The JSON form of an anchor (durations as ``"-90m"``), which :func:`events_for` reads back."""
    return spec.model_dump(mode="json")
