"""Airflow's own REST API (v2), for reports about runs: a task cannot read Airflow's metadata database in Airflow 3,
so the day's runs (their states and durations) come from the api-server, as the UI reads them; and for the
escalation engine, which runs in the triggerer and creates a runbook's run the way a person's trigger does."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tradeops.exceptions import PlatformApiError
from tradeops.platform.hooks import JsonApiHook

if TYPE_CHECKING:
    from airflow.sdk import Connection

PAGE = 100
MAX_RUNS = 1000  # a day of runbooks is far fewer; the bound keeps a misconfigured window from paging forever


class AirflowApiHook(JsonApiHook):
    """Airflow's REST API, with a JWT from ``/auth/token``: the connection's login and password when it has them
    (``POST``), else a token without credentials (``GET``: the simple auth manager with ``all_admins``).

    :param conn_id: the HTTP connection of the api-server.
    """

    hook_name = "Airflow REST API"

    def _auth_headers(self, conn: Connection) -> dict[str, str]:
        import requests

        url = f"{self._base_url}/auth/token"
        try:
            if conn.login:
                answer = requests.post(url, json={"username": conn.login, "password": conn.password}, timeout=30)
            else:
                answer = requests.get(url, timeout=30)
        except requests.RequestException as err:
            raise PlatformApiError(f"{url}: {type(err).__name__}") from None
        if not answer.ok:
            raise PlatformApiError(f"{url} answered HTTP {answer.status_code}", status=answer.status_code)
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def dag_runs(self, after: datetime, until: datetime) -> list[dict[str, Any]]:
        """Every DAG's runs whose ``run_after`` is in ``[after, until]``, oldest first."""
        runs: list[dict[str, Any]] = []
        while len(runs) < MAX_RUNS:
            page = self.get(
                "/api/v2/dags/~/dagRuns",
                run_after_gte=after.isoformat(),
                run_after_lte=until.isoformat(),
                order_by="run_after",
                limit=PAGE,
                offset=len(runs),
            )
            runs += page["dag_runs"]
            if len(runs) >= page["total_entries"] or not page["dag_runs"]:
                break
        return runs

    def is_paused(self, dag_id: str) -> bool:
        """Whether ``dag_id`` is paused (raises :class:`PlatformApiError`, status 404, for a DAG Airflow lacks)."""
        return bool(self.get(f"/api/v2/dags/{quote(dag_id, safe='')}")["is_paused"])

    def trigger_run(self, dag_id: str, run_id: str, conf: dict[str, Any], note: str) -> bool:
        """Create the run ``run_id`` of ``dag_id`` (its form validated, as any trigger); False when it exists
        already (HTTP 409). Not retried: a run that was created before a lost answer is found by its id next time."""
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf, "note": note}
        try:
            self.request("POST", f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns", json=body)
        except PlatformApiError as err:
            if err.status == 409:
                return False
            raise
        return True
