"""The post-market shutdown against the sandbox: its positions, replica counts and incidents put back after each
test, and a close-out that reads the book back in seconds instead of a minute."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
import requests

from tradeops.calendar.sessions import sessions_for
from tradeops.daily.report import closed_session


@pytest.fixture
def quick_close_out(tmp_path, monkeypatch):
    """Tasks read the repository's config with three read-backs, 1 s apart and doubling (3 s in all)."""
    from tradeops.config import CONFIG_ENV, default_config_path

    path = tmp_path / "tradeops-quick.yaml"
    path.write_text(
        f'extends: "{default_config_path()}"\ntrading_day:\n  positions: {{attempts: 3, backoff: 1s, severity: P1}}\n'
    )
    monkeypatch.setenv(CONFIG_ENV, str(path))
    monkeypatch.setenv("TRADEOPS_BACKUP_DIR", str(tmp_path / "backups"))


@pytest.fixture
def book(sandbox_settings):
    """The sandbox's open positions ``{symbol: qty}``; every position (and quantity) put back after the test."""
    dsn = sandbox_settings["postgres"]["platform_dsn"]
    with psycopg.connect(dsn) as conn:
        before = conn.execute("SELECT symbol, qty FROM positions").fetchall()
    yield {symbol: float(qty) for symbol, qty in before if qty}
    with psycopg.connect(dsn) as conn:
        for symbol, qty in before:
            conn.execute("UPDATE positions SET qty = %s WHERE symbol = %s", (qty, symbol))


@pytest.fixture
def replicas(config, kubectl):
    """The replica counts of the deployments the DAG scales, put back after the test."""
    names = [d.name for d in config.kubernetes.deployments if d.role in config.trading_day.scale_roles]
    before = {name: kubectl.json("get", "deployment", name)["spec"]["replicas"] for name in names}
    yield before
    for name, count in before.items():
        kubectl.ok("scale", f"deployment/{name}", f"--replicas={count}")


@pytest.fixture
def state_db(sandbox_settings):
    """The state database; the incidents the test opened are resolved afterwards (tests share it)."""
    dsn = sandbox_settings["postgres"]["state_dsn"]
    yield dsn
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "UPDATE tradeops.incidents SET status = 'resolved', resolved_at = now(), resolved_by = 'tests (cleanup)' "
            "WHERE status <> 'resolved' AND dag_id = 'post_market_shutdown'"
        )


@pytest.fixture
def session_today():
    """The session a run started now closes out."""
    return closed_session(sessions_for("XNYS"), datetime.now(UTC))


@pytest.fixture
def platform_api(sandbox_settings):
    """Calls to the sandbox's platform API as the platform's operators make them (bearer token)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {sandbox_settings['secrets']['platform_api_token']}"
    base = sandbox_settings["platform_api"]["url"]

    def call(method: str, path: str, **kwargs) -> dict:
        response = session.request(method, base + path, timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    return call


@pytest.fixture
def trading_hours_monitoring(config, platform_api):
    """The platform's monitoring in trading-hours mode, as the day leaves it; its mode before put back after."""
    before = platform_api("GET", "/v1/monitoring/mode")["mode"]
    modes = config.trading_day.monitoring_modes
    platform_api("PUT", "/v1/monitoring/mode", json={"mode": modes.market_hours, "reason": "test: the trading day"})
    yield modes.off_hours
    platform_api("PUT", "/v1/monitoring/mode", json={"mode": before, "reason": "test: put back"})
