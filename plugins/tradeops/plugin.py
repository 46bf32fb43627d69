"""The TradeOps Airflow plugin: registers what the scheduler and api-server must know by name, and mounts the
TradeOps web app (Slack buttons, the incidents page) on the api-server."""

from __future__ import annotations

from functools import cached_property

from airflow.plugins_manager import AirflowPlugin

from tradeops.calendar.deadlines import ExchangeSessionDeadline
from tradeops.calendar.timetable import ExchangeSessionTimetable


class TradeOpsPlugin(AirflowPlugin):
    name = "tradeops"
    timetables = [ExchangeSessionTimetable]
    deadline_references = [ExchangeSessionDeadline]
    external_views = [
        {"name": "Incidents", "href": "/tradeops/incidents", "destination": "nav", "url_route": "tradeops-incidents"}
    ]

    @cached_property
    def fastapi_apps(self) -> list[dict]:  # type: ignore[override]  # AirflowPlugin declares a plain attribute
        # Built when the api-server asks for it: every Airflow process (and task) loads plugins, and the app pulls in
        # FastAPI and the api-server's security module (~1 s of imports) that only the api-server needs.
        from tradeops.incidents.app import create_app

        return [{"app": create_app(), "url_prefix": "/tradeops", "name": "TradeOps"}]
