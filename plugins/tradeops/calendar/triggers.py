"""``MarketBoundaryTrigger``: sleep in the triggerer until an exact market boundary, then fire.

No polling: it sleeps the whole remaining time (re-reading the clock at least once a minute, so a suspended host
or a clock step is noticed), and fires within milliseconds of the boundary. With ``end_from_trigger`` it ends
the task itself (``TaskSuccessEvent``), so no worker is needed after the deferral at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

MAX_SLEEP_S = 60.0


class MarketBoundaryTrigger(BaseTrigger):
    """Fire at ``moment`` (see the module's docs).

    :param moment: the boundary, an aware datetime or its ISO text.
    :param label: what the boundary is, for the logs (``XNYS open -60m``).
    :param end_from_trigger: end the task from the trigger (no worker after the deferral) instead of resuming it.
    """

    def __init__(self, moment: datetime | str, label: str = "", end_from_trigger: bool = False):
        super().__init__()
        moment = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
        if moment.tzinfo is None:
            raise ValueError("MarketBoundaryTrigger needs an aware datetime")
        self.moment = moment.astimezone(UTC)
        self.label = label
        self.end_from_trigger = end_from_trigger

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "tradeops.calendar.triggers.MarketBoundaryTrigger",
            {"moment": self.moment.isoformat(), "label": self.label, "end_from_trigger": self.end_from_trigger},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        self.log.info("Waiting until %s (%s)", self.moment.isoformat(), self.label)
        while (remaining := (self.moment - datetime.now(UTC)).total_seconds()) > 0:
            await asyncio.sleep(min(remaining, MAX_SLEEP_S))
        fired = {"boundary": self.moment.isoformat(), "fired_at": datetime.now(UTC).isoformat(), "label": self.label}
        self.log.info("Boundary reached: %s", fired)
        if self.end_from_trigger:
            yield TaskSuccessEvent(xcoms={"return_value": fired})
        else:
            yield TriggerEvent(fired)
