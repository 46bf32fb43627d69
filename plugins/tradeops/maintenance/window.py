"""A maintenance window: it opens at each occurrence of a clock anchor (``{anchor: clock, at: "02:00", days:
[sun]}``) and lasts ``length``. Work may start only inside it and while the exchange is closed, unless someone
breaks the glass (and says why); a step that would start after the window has closed is abandoned."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tradeops.calendar.events import ClockEvents, events_for
from tradeops.config.model import ClockAnchor, SessionAnchor
from tradeops.exceptions import WindowClosed


@dataclass(frozen=True)
class OpenWindow:
    """A window work may run in: from ``start`` until ``end``."""

    start: datetime
    end: datetime


class MaintenanceWindow:
    """The windows that open at each occurrence of ``anchor`` (a clock anchor, in ``exchange``'s time zone) and last
    ``length``."""

    def __init__(self, anchor: ClockAnchor | SessionAnchor | dict[str, Any], length: timedelta, exchange: str) -> None:
        events = events_for(anchor, exchange)
        if not isinstance(events, ClockEvents):
            raise ValueError("a maintenance window opens at a clock time ({anchor: clock, at: ...})")
        self.events = events
        self.length = length

    def current(self, now: datetime) -> OpenWindow | None:
        """The window ``now`` is in, if any."""
        start = self.events.previous(now)
        if start is not None and now < start + self.length:
            return OpenWindow(start, start + self.length)
        return None

    def market_open(self, now: datetime) -> bool:
        return self.events.table.is_open(now)

    def admit(self, now: datetime, *, break_glass: bool = False, reason: str = "") -> OpenWindow:
        """The window work may run in; raises :class:`WindowClosed` saying why not. Breaking the glass needs a
        reason and opens an ad-hoc window of ``length`` from now."""
        window = self.current(now)
        problems: list[str] = []
        if window is None:
            following = self.events.next(now, inclusive=False)
            problems.append(
                f"outside the maintenance window ({self.events.describe()} for {self.length}; next "
                f"opens {following.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"
            )
        if self.market_open(now):
            problems.append(f"{self.events.exchange} is open")
        if window is not None and not problems:
            return window
        if break_glass:
            if not reason.strip():
                raise WindowClosed("break-glass needs a reason: " + "; ".join(problems))
            return OpenWindow(now, now + self.length)
        raise WindowClosed("refusing to start: " + "; ".join(problems) + " (set break_glass with a reason to force)")
