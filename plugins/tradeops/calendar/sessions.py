"""Trading sessions of an exchange, from ``exchange_calendars``, built once per process and searched by bisection.

The library's calendars stop about a year ahead by default; here every calendar is built over an explicit range
(2015 through five years past the current year), and asking outside it is an error that says so.
Timestamps are exact UTC instants, so early closes and daylight-saving changes come straight from the exchange's
own rules rather than from cron arithmetic.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

FIRST_YEAR = 2015
YEARS_AHEAD = 5


class OutsideCalendarError(ValueError):
    """Asked about a moment the exchange calendar does not cover."""


@dataclass(frozen=True)
class Session:
    day: date
    open: datetime
    close: datetime

    def at(self, anchor: str) -> datetime:
        return self.open if anchor == "open" else self.close

    @property
    def early_close(self) -> bool:
        return (self.close - self.open) < timedelta(hours=6, minutes=30)


class SessionTable:
    """Every session of one exchange in a fixed range, as sorted lists of aware UTC datetimes."""

    def __init__(self, exchange: str, sessions: list[Session], tz: str, first: date, last: date):
        self.exchange = exchange
        self.sessions = sessions
        self.tz = tz
        self.first = first
        self.last = last
        self._opens = [s.open for s in sessions]
        self._closes = [s.close for s in sessions]
        self._days = [s.day for s in sessions]

    @classmethod
    def build(cls, exchange: str, first: date, last: date) -> SessionTable:
        import exchange_calendars

        calendar = exchange_calendars.get_calendar(exchange, start=first.isoformat(), end=last.isoformat())
        opens = calendar.opens.dt.to_pydatetime()
        closes = calendar.closes.dt.to_pydatetime()
        days = [ts.date() for ts in calendar.sessions]
        sessions = [
            Session(day, o.astimezone(UTC), c.astimezone(UTC)) for day, o, c in zip(days, opens, closes, strict=True)
        ]
        return cls(exchange, sessions, str(calendar.tz), first, last)

    def _check(self, moment: datetime) -> None:
        if not (self.sessions[0].open - timedelta(days=7) <= moment <= self.sessions[-1].close + timedelta(days=1)):
            raise OutsideCalendarError(
                f"{moment.isoformat()} is outside the {self.exchange} calendar built for "
                f"{self.first.isoformat()}..{self.last.isoformat()}"
            )

    def next_event(self, anchor: str, offset: timedelta, after: datetime, *, inclusive: bool) -> tuple[Session, datetime]:
        """The first session whose ``anchor + offset`` is at/after ``after`` (strictly after unless ``inclusive``)."""
        self._check(after)
        times = self._opens if anchor == "open" else self._closes
        target = after - offset
        index = bisect.bisect_left(times, target) if inclusive else bisect.bisect_right(times, target)
        if index >= len(times):
            raise OutsideCalendarError(
                f"no {self.exchange} session after {after.isoformat()} in the calendar built up to {self.last}"
            )
        session = self.sessions[index]
        return session, session.at(anchor) + offset

    def previous_event(self, anchor: str, offset: timedelta, before: datetime) -> tuple[Session, datetime] | None:
        """The last session whose ``anchor + offset`` is at or before ``before``."""
        self._check(before)
        times = self._opens if anchor == "open" else self._closes
        index = bisect.bisect_right(times, before - offset) - 1
        if index < 0:
            return None
        session = self.sessions[index]
        return session, session.at(anchor) + offset

    def session_on(self, day: date) -> Session | None:
        index = bisect.bisect_left(self._days, day)
        if index < len(self._days) and self._days[index] == day:
            return self.sessions[index]
        return None

    def is_open(self, moment: datetime) -> bool:
        self._check(moment)
        index = bisect.bisect_right(self._opens, moment) - 1
        return index >= 0 and moment < self._closes[index]


def default_range(today: date | None = None) -> tuple[date, date]:
    today = today or datetime.now(UTC).date()
    return date(FIRST_YEAR, 1, 1), date(today.year + YEARS_AHEAD, 12, 31)


@functools.lru_cache(maxsize=16)
def _table(exchange: str, first: date, last: date) -> SessionTable:
    return SessionTable.build(exchange, first, last)


def sessions_for(exchange: str, first: date | None = None, last: date | None = None) -> SessionTable:
    """The cached session table for ``exchange``: built on first use in a process, reused afterwards."""
    default_first, default_last = default_range()
    return _table(exchange, first or default_first, last or default_last)
