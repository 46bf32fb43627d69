"""``ExchangeSessionTimetable``: run a DAG at an offset from each trading session's open or close.

Only trading days produce runs; a close-anchored run follows early closes (13:00 ET the day after
Thanksgiving); runs stay on the exchange's local clock through daylight-saving changes because every
instant comes from the exchange calendar, never from cron arithmetic. Each run is a point in time:
its logical date is the moment it is due (``DagRunInfo.exact``).

The calendar is built lazily, once per process (the scheduler calls ``next_dagrun_info`` often; DAG files
only construct the timetable, which imports nothing heavy).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.timetables.base import DagRunInfo, DataInterval, Timetable

from tradeops.config.model import MarketAnchor, format_duration

if TYPE_CHECKING:
    from pendulum import DateTime

    from airflow.timetables.base import TimeRestriction


def _pendulum(moment: datetime) -> DateTime:
    import pendulum

    return pendulum.instance(moment.astimezone(UTC))


def describe_anchor(anchor: str, offset: timedelta, exchange: str) -> str:
    """``"90 min before XNYS open"``, ``"30 min after XNYS close"``, ``"at XNYS open"``."""
    minutes = int(offset.total_seconds() // 60)
    if minutes == 0:
        return f"at {exchange} {anchor}"
    amount = f"{abs(minutes)} min" if abs(minutes) < 120 or abs(minutes) % 60 else f"{abs(minutes) // 60} h"
    return f"{amount} {'before' if minutes < 0 else 'after'} {exchange} {anchor}"


class ExchangeSessionTimetable(Timetable):
    """Runs at ``anchor`` (``"open"`` or ``"close"``) ``+ offset`` of every session of ``exchange``."""

    def __init__(self, anchor: str = "open", offset: timedelta = timedelta(0), exchange: str = "XNYS"):
        if anchor not in ("open", "close"):
            raise ValueError(f"anchor must be 'open' or 'close', got {anchor!r}")
        if abs(offset) >= timedelta(hours=24):
            raise ValueError("offset must be shorter than 24h")
        self.anchor = anchor
        self.offset = offset
        self.exchange = exchange
        self.description = f"{describe_anchor(anchor, offset, exchange)}, on {exchange} trading days"

    @classmethod
    def from_config(cls, anchor: MarketAnchor, exchange: str) -> ExchangeSessionTimetable:
        return cls(anchor=anchor.anchor, offset=anchor.offset, exchange=exchange)

    @property
    def summary(self) -> str:
        return describe_anchor(self.anchor, self.offset, self.exchange)

    def serialize(self) -> dict[str, Any]:
        return {"anchor": self.anchor, "offset": format_duration(self.offset), "exchange": self.exchange}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> ExchangeSessionTimetable:
        from tradeops.config.model import parse_duration

        return cls(anchor=data["anchor"], offset=parse_duration(data["offset"]), exchange=data["exchange"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExchangeSessionTimetable):
            return NotImplemented
        return self.serialize() == other.serialize()

    def __hash__(self) -> int:
        return hash(tuple(self.serialize().items()))

    def _sessions(self):
        from tradeops.calendar.sessions import sessions_for

        return sessions_for(self.exchange)

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        return DataInterval.exact(run_after)

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
    ) -> DagRunInfo | None:
        sessions = self._sessions()
        now = datetime.now(UTC)
        if last_automated_data_interval is not None:
            last = last_automated_data_interval.end
            _, due = sessions.next_event(self.anchor, self.offset, last, inclusive=False)
            if not restriction.catchup and due < now:
                # Missed while the scheduler was down: run the latest missed one once, not the whole backlog.
                _, due = sessions.previous_event(self.anchor, self.offset, now)
        else:
            if restriction.earliest is None:
                return None
            after = restriction.earliest if restriction.catchup else max(restriction.earliest, now)
            _, due = sessions.next_event(self.anchor, self.offset, after, inclusive=True)
        if restriction.earliest is not None and due < restriction.earliest:
            _, due = sessions.next_event(self.anchor, self.offset, restriction.earliest, inclusive=True)
        if restriction.latest is not None and due > restriction.latest:
            return None
        return DagRunInfo.exact(_pendulum(due))
