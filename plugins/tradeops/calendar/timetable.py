"""``ExchangeSessionTimetable``: schedule a DAG on the exchange's calendar instead of cron.

``{anchor: open|close, offset, sessions}`` runs at an offset from each trading session's open or close, only on
trading days (and only on the first/last session of the week or month if asked); a close-anchored run follows
early closes. ``{anchor: clock, at, days}`` runs at an exchange-local wall-clock time on given weekdays, skipping
occurrences while the exchange is open (maintenance windows). Every instant comes from the exchange calendar in
UTC, so daylight-saving changes never move a run off the exchange's local clock. Each run is a point in time: its
logical date is the moment it is due.

``catchup=False``: the first run is the next event after the DAG is deployed; a scheduler that was down runs the
latest missed event once instead of the backlog. ``catchup=True``: every event from ``start_date`` on.

DAG files only construct the timetable (no calendar is built at parse time); the calendar is built once per
process on first use and searched by bisection afterwards.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.timetables.base import DagRunInfo, DataInterval, Timetable

from tradeops.calendar.events import anchor_to_dict, events_for

if TYPE_CHECKING:
    from airflow.timetables.base import TimeRestriction
    from pendulum import DateTime

    from tradeops.config.model import ClockAnchor, SessionAnchor


def _pendulum(moment: datetime) -> DateTime:
    import pendulum

    return pendulum.instance(moment.astimezone(UTC))


class ExchangeSessionTimetable(Timetable):
    """Runs at each event of a market anchor on ``exchange`` (an ``exchange_calendars`` code, default XNYS).

    ``anchor`` is a ``SessionAnchor``/``ClockAnchor`` from the TradeOps config or its dict form, e.g.
    ``{"anchor": "close", "offset": "30m"}`` or ``{"anchor": "clock", "at": "02:00", "days": ["sun"]}``.
    """

    def __init__(self, anchor: SessionAnchor | ClockAnchor | dict, exchange: str = "XNYS"):
        self.events = events_for(anchor, exchange)
        self.exchange = exchange
        self.description = self.events.describe()

    @property
    def summary(self) -> str:
        return self.description

    def serialize(self) -> dict[str, Any]:
        return {"anchor": anchor_to_dict(self.events.spec), "exchange": self.exchange}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> ExchangeSessionTimetable:
        return cls(data["anchor"], data["exchange"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExchangeSessionTimetable):
            return NotImplemented
        return self.serialize() == other.serialize()

    def __hash__(self) -> int:
        return hash(repr(self.serialize()))

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        return DataInterval.exact(run_after)

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
    ) -> DagRunInfo | None:
        events = self.events
        now = datetime.now(UTC)
        if last_automated_data_interval is not None:
            due = events.next(last_automated_data_interval.end, inclusive=False)
            if not restriction.catchup and due < now:
                # Missed while the scheduler was down: run the latest missed event once, not the backlog.
                due = events.previous(now) or due
        else:
            if restriction.earliest is None:
                return None
            after = restriction.earliest if restriction.catchup else max(restriction.earliest, now)
            due = events.next(after, inclusive=True)
        if restriction.earliest is not None and due < restriction.earliest:
            due = events.next(restriction.earliest, inclusive=True)
        if restriction.latest is not None and due > restriction.latest:
            return None
        return DagRunInfo.exact(_pendulum(due))
