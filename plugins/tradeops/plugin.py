"""The TradeOps Airflow plugin: registers what the scheduler and api-server must know by name."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from tradeops.calendar.deadlines import ExchangeSessionDeadline
from tradeops.calendar.timetable import ExchangeSessionTimetable


class TradeOpsPlugin(AirflowPlugin):
    name = "tradeops"
    timetables = [ExchangeSessionTimetable]
    deadline_references = [ExchangeSessionDeadline]
