"""The platform hooks against the sandbox: connections from Airflow, retries, and errors that name the cause."""

from __future__ import annotations

import json
import time

import pytest

from tradeops.exceptions import PlatformApiError
from tradeops.platform.hooks import AlertmanagerHook, TradingPlatformHook


@pytest.fixture
def platform(airflow_connections, config):
    return TradingPlatformHook(config.connections.platform_api, backoff=0.05)


def test_reads_through_the_airflow_connection(platform):
    assert platform.get("/v1/account/status")["account_id"] == "GM-PRIMARY"


def test_5xx_burst_is_retried_with_backoff(platform, sandbox, capsys):
    sandbox.set_faults("platform_api", error_burst=2, error_status=503)
    assert platform.get("/v1/account/status")["status"] == "active"
    logged = capsys.readouterr().out  # Airflow logs through structlog to stdout
    assert "GET /v1/account/status: HTTP 503; retry 1/3 in 0.1s" in logged
    assert "GET /v1/account/status: HTTP 503; retry 2/3 in 0.1s" in logged
    assert "retry 3/3" not in logged


def test_retries_are_bounded(platform, sandbox):
    sandbox.set_faults("platform_api", error_rate=1.0, error_status=502)
    with pytest.raises(PlatformApiError, match="answered HTTP 502") as err:
        platform.get("/v1/account/status")
    assert err.value.status == 502


def test_429_waits_for_retry_after(platform, sandbox):
    sandbox.set_faults("platform_api", rate_limit=1, retry_after_s=1)
    started = time.monotonic()
    platform.get("/v1/account/status")
    assert time.monotonic() - started >= 1.0


def test_a_post_without_idempotency_key_is_never_retried(platform, sandbox, sandbox_settings):
    sandbox.set_faults("platform_api", error_burst=1)
    with pytest.raises(PlatformApiError, match="HTTP 503"):
        platform.request("POST", "/v1/auth/tokens/revoke-all", json={"reason": "drill"})
    # With a key the same call is safe to retry: the burst fails the first try, the retry goes through.
    sandbox.set_faults("platform_api", error_burst=1)
    answer = platform.request(
        "POST", "/v1/positions/close-all", json={"reason": "drill", "dry_run": True}, idempotency_key="hook-test-1"
    )
    assert answer["dry_run"] is True


def test_connection_refused_is_reported_without_secrets(monkeypatch, config):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DEAD_API",
        '{"conn_type": "http", "host": "127.0.0.1", "port": 9, "schema": "http", "password": "s3cr3t-token"}',
    )
    hook = TradingPlatformHook("dead_api", retries=1, backoff=0.01)
    with pytest.raises(PlatformApiError, match="ConnectionError") as err:
        hook.get("/v1/system/status")
    assert "s3cr3t-token" not in str(err.value)


def test_401_names_the_connection(monkeypatch, airflow_connections, sandbox_settings):
    port = int(sandbox_settings["platform_api"]["url"].rsplit(":", 1)[1])
    monkeypatch.setenv(
        "AIRFLOW_CONN_BAD_TOKEN",
        json.dumps(
            {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http", "password": "not-the-token"}
        ),
    )
    with pytest.raises(PlatformApiError, match="GET /v1/system/status on bad_token answered HTTP 401"):
        TradingPlatformHook("bad_token").get("/v1/system/status")


def test_missing_token_is_refused_before_any_call(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_NO_TOKEN", '{"conn_type": "http", "host": "127.0.0.1", "port": 9}')
    with pytest.raises(PlatformApiError, match="has no bearer token"):
        TradingPlatformHook("no_token").get("/v1/system/status")


def test_alertmanager_hook_returns_only_unsilenced_active_alerts(airflow_connections, config):
    alerts = AlertmanagerHook(config.connections.alertmanager).active_alerts()
    assert all(a["status"]["state"] == "active" for a in alerts)
    assert "HighMemoryUsage" in [a["labels"]["alertname"] for a in alerts]
