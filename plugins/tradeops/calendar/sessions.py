"""Trading sessions of an exchange, from ``exchange_calendars``, built once per process and searched by bisection.

The library's calendars stop about a year ahead by default; here every calendar is built over an explicit range
(2015 through five years past the current year), and asking outside it is an error that says so.
Building one costs ~1.5 s (pandas), so the first process to build a table writes it to a small JSON cache
(``$TRADEOPS_CACHE_DIR``, default ``~/.cache/tradeops``) that every other component then reads in milliseconds.
Timestamps are exact UTC instants, so early closes and daylight-saving changes come straight from the exchange's
own rules rather than from cron arithmetic.
"""

from __future__ import annotations

import bisect
import functools
import importlib.metadata
import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from tradeops.exceptions import OutsideCalendarError

FIRST_YEAR = 2015
YEARS_AHEAD = 5


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
        self._filtered: dict[tuple[str, str], tuple[list[Session], list[datetime]]] = {}

    @classmethod
    def build(cls, exchange: str, first: date, last: date) -> SessionTable:
        """From ``exchange_calendars`` (pandas: ~1.5 s), or from the cache file an earlier process wrote (~10 ms)."""
        cache = _cache_path(exchange, first, last)
        try:
            data = json.loads(cache.read_text())
        except (OSError, ValueError):
            data = _from_exchange_calendars(exchange, first, last)
            _write_atomically(cache, json.dumps(data))
        sessions = [
            Session(date.fromisoformat(day), datetime.fromtimestamp(o, UTC), datetime.fromtimestamp(c, UTC))
            for day, o, c in data["sessions"]
        ]
        return cls(exchange, sessions, data["tz"], first, last)

    def _check(self, moment: datetime) -> None:
        if not (self.sessions[0].open - timedelta(days=7) <= moment <= self.sessions[-1].close + timedelta(days=1)):
            raise OutsideCalendarError(
                f"{moment.isoformat()} is outside the {self.exchange} calendar built for "
                f"{self.first.isoformat()}..{self.last.isoformat()}"
            )

    def _events(self, anchor: str, sessions: str) -> tuple[list[Session], list[datetime]]:
        """The sessions a filter keeps and their anchor instants, computed once per table."""
        key = (anchor, sessions)
        if key not in self._filtered:
            kept = [s for i, s in enumerate(self.sessions) if _FILTERS[sessions](self.sessions, i)]
            self._filtered[key] = (kept, [s.at(anchor) for s in kept])
        return self._filtered[key]

    def next_event(
        self, anchor: str, offset: timedelta, after: datetime, *, inclusive: bool, sessions: str = "every"
    ) -> tuple[Session, datetime]:
        """The first kept session whose ``anchor + offset`` is at/after ``after`` (after, unless ``inclusive``)."""
        self._check(after)
        kept, times = self._events(anchor, sessions)
        target = after - offset
        index = bisect.bisect_left(times, target) if inclusive else bisect.bisect_right(times, target)
        if index >= len(times):
            raise OutsideCalendarError(
                f"no {self.exchange} session after {after.isoformat()} in the calendar built up to {self.last}"
            )
        return kept[index], times[index] + offset

    def previous_event(
        self, anchor: str, offset: timedelta, before: datetime, sessions: str = "every"
    ) -> tuple[Session, datetime] | None:
        """The last kept session whose ``anchor + offset`` is at or before ``before``."""
        self._check(before)
        kept, times = self._events(anchor, sessions)
        index = bisect.bisect_right(times, before - offset) - 1
        if index < 0:
            return None
        return kept[index], times[index] + offset

    def next_session(self, day: date) -> Session:
        """The first session on or after ``day``."""
        index = bisect.bisect_left(self._days, day)
        if index >= len(self._days):
            raise OutsideCalendarError(f"no {self.exchange} session on or after {day} in the calendar")
        return self.sessions[index]

    def session_on(self, day: date) -> Session | None:
        """The session on ``day``, or None if the exchange does not trade that day."""
        if not self.first <= day <= self.last:
            raise OutsideCalendarError(
                f"{day} is outside the {self.exchange} calendar built for {self.first}..{self.last}"
            )
        index = bisect.bisect_left(self._days, day)
        if index < len(self._days) and self._days[index] == day:
            return self.sessions[index]
        return None

    def is_open(self, moment: datetime) -> bool:
        self._check(moment)
        index = bisect.bisect_right(self._opens, moment) - 1
        return index >= 0 and moment < self._closes[index]

    def current_or_next(self, moment: datetime) -> Session:
        """The session open at ``moment``, else the next one to open: the session a pre-market run prepares
        (a scheduled run at open - 60m, or one triggered by hand on a holiday: the next session)."""
        self._check(moment)
        index = bisect.bisect_right(self._opens, moment) - 1
        if index >= 0 and moment < self._closes[index]:
            return self.sessions[index]
        if index + 1 >= len(self.sessions):
            raise OutsideCalendarError(f"no {self.exchange} session after {moment.isoformat()} in the calendar")
        return self.sessions[index + 1]

    def current_or_previous(self, moment: datetime) -> Session:
        """The last session opened at or before ``moment`` (open now, or the last one closed): the session a
        post-market run closes out (a scheduled run at close + 30m; one triggered by hand on a Saturday: Friday's)."""
        self._check(moment)
        index = bisect.bisect_right(self._opens, moment) - 1
        if index < 0:
            raise OutsideCalendarError(f"no {self.exchange} session before {moment.isoformat()} in the calendar")
        return self.sessions[index]


def _first_of_week(sessions: list[Session], i: int) -> bool:
    return i == 0 or sessions[i - 1].day.isocalendar()[:2] != sessions[i].day.isocalendar()[:2]


def _last_of_week(sessions: list[Session], i: int) -> bool:
    return i == len(sessions) - 1 or sessions[i + 1].day.isocalendar()[:2] != sessions[i].day.isocalendar()[:2]


def _first_of_month(sessions: list[Session], i: int) -> bool:
    return i == 0 or (sessions[i - 1].day.year, sessions[i - 1].day.month) != (
        sessions[i].day.year,
        sessions[i].day.month,
    )


def _last_of_month(sessions: list[Session], i: int) -> bool:
    return i == len(sessions) - 1 or (sessions[i + 1].day.year, sessions[i + 1].day.month) != (
        sessions[i].day.year,
        sessions[i].day.month,
    )


_FILTERS = {
    "every": lambda sessions, i: True,
    "first_of_week": _first_of_week,
    "last_of_week": _last_of_week,
    "first_of_month": _first_of_month,
    "last_of_month": _last_of_month,
}


def _from_exchange_calendars(exchange: str, first: date, last: date) -> dict:
    import exchange_calendars

    calendar = exchange_calendars.get_calendar(exchange, start=first.isoformat(), end=last.isoformat())
    rows = zip(calendar.sessions, calendar.opens, calendar.closes, strict=True)
    return {
        "tz": str(calendar.tz),
        "sessions": [(day.date().isoformat(), o.timestamp(), c.timestamp()) for day, o, c in rows],
    }


def _cache_path(exchange: str, first: date, last: date) -> Path:
    """One file per exchange, range and exchange_calendars version (new holidays come with new versions)."""
    folder = Path(os.environ.get("TRADEOPS_CACHE_DIR") or Path.home() / ".cache" / "tradeops")
    version = importlib.metadata.version("exchange_calendars")
    return folder / f"sessions-{exchange}-{first}-{last}-xcals{version}.json"


def _write_atomically(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    except OSError:
        pass  # a read-only home only costs the next process a rebuild


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
