"""The TradeOps Airflow plugin: registers what the scheduler and api-server must know by name, and mounts the
TradeOps web app (Slack buttons, the incidents page) on the api-server."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from tradeops.calendar.deadlines import ExchangeSessionDeadline
from tradeops.calendar.timetable import ExchangeSessionTimetable
from tradeops.incidents.app import create_app


class TradeOpsPlugin(AirflowPlugin):
    name = "tradeops"
    timetables = [ExchangeSessionTimetable]
    deadline_references = [ExchangeSessionDeadline]
    fastapi_apps = [{"app": create_app(), "url_prefix": "/tradeops", "name": "TradeOps"}]
    external_views = [{"name": "Incidents", "href": "/tradeops/incidents", "destination": "nav",
                       "url_route": "tradeops-incidents"}]
