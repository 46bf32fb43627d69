"""Market-anchored deadlines: "done by 10 minutes before the open", "by close + 90 min", "by 04:00 ET Sunday".

``ExchangeSessionDeadline`` is a custom Airflow deadline reference (registered by the TradeOps plugin). When the
scheduler creates a run, it evaluates to the first event of the anchor at or after the run's ``run_after`` (for a
scheduled run, the moment it was due; for a manual run, when it was triggered), so a run due at open − 90 min with a
deadline at open − 10 min gets the same session's open − 10 min, whatever the season or an early close.
The alerts themselves are built by :func:`tradeops.dagkit.deadline_alerts`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk.definitions.deadline import BaseDeadlineReference

from tradeops.calendar.events import anchor_to_dict, events_for

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tradeops.config.model import ClockAnchor, SessionAnchor


class ExchangeSessionDeadline(BaseDeadlineReference):
    """The next event of a market anchor at or after the run's ``run_after``."""

    required_kwargs = {"dag_id", "run_id"}

    def __init__(self, anchor: SessionAnchor | ClockAnchor | dict | None = None, exchange: str = "XNYS"):
        self.events = events_for(anchor or {"anchor": "open"}, exchange)
        self.exchange = exchange

    def describe(self) -> str:
        return self.events.describe()

    def serialize_reference(self) -> dict[str, Any]:
        return {**super().serialize_reference(), "anchor": anchor_to_dict(self.events.spec), "exchange": self.exchange}

    @classmethod
    def deserialize_reference(cls, reference_data: dict[str, Any]) -> ExchangeSessionDeadline:
        return cls(reference_data["anchor"], reference_data["exchange"])

    def due_for(self, run_after: datetime) -> datetime:
        return self.events.next(run_after, inclusive=True)

    def _evaluate_with(self, *, session: Session, dag_id: str, run_id: str, **kwargs: Any) -> datetime | None:
        from airflow.models.dagrun import DagRun
        from sqlalchemy import select

        run_after = session.scalar(select(DagRun.run_after).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        return self.due_for(run_after) if run_after is not None else None
