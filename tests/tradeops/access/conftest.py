"""The access review's fixtures: the DAG ready for ``dag.test()``, its reports in a temporary folder, a state
database with no earlier review, and the sandbox's Slack emptied."""

from __future__ import annotations

import pytest
import requests

from tests.dagtest import runnable
from tradeops.incidents import store


@pytest.fixture
def access_dag(dagbag, airflow_db, airflow_connections, reports):
    return runnable(dagbag, "monthly_access_review")


@pytest.fixture
def reports(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADEOPS_REPORTS_DIR", str(tmp_path))
    return tmp_path / "monthly_access_review"


@pytest.fixture
def state_dsn(sandbox_settings):
    dsn = sandbox_settings["postgres"]["state_dsn"]
    store.migrate(dsn)
    with store.connect(dsn) as conn:
        conn.execute("DELETE FROM tradeops.access_snapshots")
        conn.execute("DELETE FROM tradeops.access_removals")
    return dsn


@pytest.fixture
def slack(sandbox_settings):
    url = sandbox_settings["slack"]["url"] + "/_sandbox/messages"
    requests.delete(url, timeout=5)
    return lambda: requests.get(url, timeout=5).json()
