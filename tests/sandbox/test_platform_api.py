"""The sandbox's trading-platform API answers as documented, over real HTTP, backed by the real database."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
import requests


@pytest.fixture
def api(sandbox_settings):
    base = sandbox_settings["platform_api"]["url"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {sandbox_settings['secrets']['platform_api_token']}"

    def call(method, path, **kwargs):
        return session.request(method, base + path, timeout=10, **kwargs)

    return call


@pytest.fixture
def restore_positions(sandbox_settings):
    """close-all really flattens the book; put it back afterwards for the other tests."""
    dsn = sandbox_settings["postgres"]["platform_dsn"]
    with psycopg.connect(dsn) as conn:
        before = conn.execute("SELECT symbol, qty FROM positions").fetchall()
    yield
    with psycopg.connect(dsn) as conn:
        for symbol, qty in before:
            conn.execute("UPDATE positions SET qty = %s WHERE symbol = %s", (qty, symbol))


def test_a_token_is_required(sandbox_settings):
    url = sandbox_settings["platform_api"]["url"] + "/v1/system/status"
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401


def test_system_status_lists_every_configured_deployment(api, config):
    body = api("GET", "/v1/system/status").json()
    names = [c["name"] for c in body["components"]]
    assert names[: len(config.kubernetes.deployments)] == [d.name for d in config.kubernetes.deployments]
    assert {"postgres", "redis"} <= set(names)
    assert body["status"] == "healthy"
    for c in body["components"]:
        if c["kind"] == "deployment":
            assert 0 < c["memory_used_bytes"] < c["memory_limit_bytes"]


def test_answers_are_deterministic(api):
    first = api("GET", "/v1/system/status").json()["components"]
    second = api("GET", "/v1/system/status").json()["components"]
    strip = lambda comps: [{k: v for k, v in c.items() if k != "uptime_s"} for c in comps]  # noqa: E731
    assert strip(first) == strip(second)


def test_agents_status(api, config):
    agents = api("GET", "/v1/agents/status").json()["agents"]
    assert [a["name"] for a in agents] == [d.name for d in config.kubernetes.deployments if d.role == "agent"]
    assert all(a["status"] == "healthy" and a["decisions_last_5m"] > 0 for a in agents)


def test_account_status_balance_and_margin(api):
    assert api("GET", "/v1/account/status").json() == {
        "account_id": "GM-PRIMARY",
        "name": "GrandModel primary futures account",
        "status": "active",
        "trading_enabled": True,
        "broker": "rithmic",
    }
    assert api("GET", "/v1/account/balance").json()["balance"] == 12_500_000.0
    margin = api("GET", "/v1/account/margin").json()
    assert margin["margin_used"] + margin["margin_available"] == 12_500_000.0
    assert margin["margin_available_pct"] == 75.2


def test_positions_come_from_the_database(api, sandbox_settings):
    positions = api("GET", "/v1/positions").json()
    with psycopg.connect(sandbox_settings["postgres"]["platform_dsn"]) as conn:
        open_in_db = conn.execute("SELECT count(*) FROM positions WHERE qty <> 0").fetchone()[0]
    assert positions["count"] == open_in_db == 10
    assert all(p["qty"] != 0 for p in positions["positions"])


def test_close_all_dry_run_then_for_real_with_idempotency(api, sandbox_settings, restore_positions):
    dry = api("POST", "/v1/positions/close-all", json={"reason": "drill", "dry_run": True}).json()
    assert dry["dry_run"] is True and dry["closed"] == 10
    assert api("GET", "/v1/positions").json()["count"] == 10, "a dry run changes nothing"

    key = {"Idempotency-Key": "close-all-test-1"}
    real = api("POST", "/v1/positions/close-all", json={"reason": "end of day"}, headers=key)
    assert real.json()["closed"] == 10
    assert api("GET", "/v1/positions").json()["count"] == 0
    replay = api("POST", "/v1/positions/close-all", json={"reason": "end of day"}, headers=key)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == real.json(), "a retried request gets the first answer, not a second action"
    with psycopg.connect(sandbox_settings["postgres"]["platform_dsn"]) as conn:
        flatten_trades = conn.execute("SELECT count(*) FROM trades WHERE strategy = 'flatten'").fetchone()[0]
    assert flatten_trades == 10

    assert api("POST", "/v1/positions/close-all", json={"reason": "x"}).status_code == 422


def test_risk_limits(api):
    body = api("GET", "/v1/risk/limits").json()
    assert [limit["name"] for limit in body["limits"]] == [
        "max_gross_exposure_usd",
        "max_position_contracts",
        "max_daily_drawdown_pct",
    ]
    assert body["breached"] == []


def test_model_validation(api, config):
    body = api("GET", "/v1/models/validation").json()
    assert body["valid"] is True
    assert {m["name"] for m in body["models"]} == {d.name for d in config.kubernetes.deployments if d.role == "agent"}


def test_data_feeds_and_performance(api):
    feeds = api("GET", "/v1/data-feeds/status").json()["feeds"]
    assert [f["name"] for f in feeds] == ["rithmic-md", "cme-mdp3", "news-sentiment"]
    assert all(f["status"] == "connected" for f in feeds)
    perf = api("GET", "/v1/performance/metrics", params={"timeframe": "1d"}).json()
    assert perf["response_time_p95_ms"] == 42.0 and perf["total_trades"] > 0
    assert api("GET", "/v1/performance/metrics", params={"timeframe": "1y"}).status_code == 422


def test_token_revocation(api):
    before = api("GET", "/v1/auth/sessions").json()["active_sessions"]
    revoked = api("POST", "/v1/auth/tokens/revoke-all", json={"reason": "incident drill"}).json()
    assert revoked["revoked"] == before > 0
    assert api("GET", "/v1/auth/sessions").json()["active_sessions"] == 0


def test_tokens_are_listed_without_values_and_revoked_by_literal_selector(api):
    user = f"tests-{uuid.uuid4().hex[:8]}"
    issued = [api("POST", "/v1/auth/tokens", json={"user": user, "scope": s}).json() for s in ("read", "trading")]
    assert all(t["token"].startswith("gm_") and t["active"] for t in issued), "the value is in the issue answer only"
    listed = api("GET", "/v1/auth/tokens", params={"user": user}).json()["tokens"]
    assert sorted(t["id"] for t in listed) == sorted(t["id"] for t in issued)
    assert all("token" not in t and issued[0]["token"] not in str(t) for t in listed)
    others = api("GET", "/v1/auth/tokens", params={"active": "true"}).json()["count"] - 2

    refused = [
        {"reason": "drill"},  # no selector: never "everything"
        {"reason": "drill", "all": True, "user": user},  # all, alone
        {"reason": "drill", "user": f"{user[:-1]}*"},  # a pattern is refused
    ]
    assert [api("POST", "/v1/auth/tokens/revoke", json=body).status_code for body in refused] == [422] * 3
    assert api("POST", "/v1/auth/tokens/revoke", json={"reason": "drill", "user": user[:-1]}).json()["revoked"] == []

    body = {"reason": "drill", "user": user, "scope": "trading"}
    first = api("POST", "/v1/auth/tokens/revoke", json=body, headers={"Idempotency-Key": f"{user}-1"}).json()
    assert first["revoked"] == [issued[1]["id"]]
    again = api("POST", "/v1/auth/tokens/revoke", json=body, headers={"Idempotency-Key": f"{user}-1"}).json()
    assert again == first, "a retried call answers the same"
    after = {t["id"]: t for t in api("GET", "/v1/auth/tokens", params={"user": user}).json()["tokens"]}
    assert after[issued[1]["id"]]["active"] is False and after[issued[1]["id"]]["revoked_reason"] == "drill"
    assert after[issued[0]["id"]]["active"] is True, "the read token is not of the selected scope"
    assert api("GET", "/v1/auth/tokens", params={"active": "true"}).json()["count"] - 1 == others
    api("POST", "/v1/auth/tokens/revoke", json={"reason": "tests: cleanup", "user": user})


# --- fault knobs ------------------------------------------------------------------------------------------------


def test_unhealthy_knob_marks_components_agents_feeds_and_models(api, sandbox):
    sandbox.set_faults("platform_api", unhealthy=["tactical-marl", "cme-mdp3", "model:risk-management", "redis"])
    status = api("GET", "/v1/system/status").json()
    assert status["status"] == "degraded"
    assert {c["name"] for c in status["components"] if c["status"] != "healthy"} == {"tactical-marl", "redis"}
    agents = {a["name"]: a for a in api("GET", "/v1/agents/status").json()["agents"]}
    assert agents["tactical-marl"]["status"] == "unhealthy" and agents["tactical-marl"]["decisions_last_5m"] == 0
    feeds = {f["name"]: f["status"] for f in api("GET", "/v1/data-feeds/status").json()["feeds"]}
    assert feeds["cme-mdp3"] == "disconnected"
    assert api("GET", "/v1/models/validation").json()["valid"] is False


def test_latency_knob(api, sandbox):
    sandbox.set_faults("platform_api", latency_ms=300)
    started = time.monotonic()
    assert api("GET", "/v1/account/status").ok
    assert time.monotonic() - started >= 0.3


def test_error_rate_knob_is_exact_and_repeatable(api, sandbox):
    sandbox.set_faults("platform_api", error_rate=0.25, error_status=502)
    codes = [api("GET", "/v1/account/status").status_code for _ in range(8)]
    assert codes == [200, 200, 200, 502, 200, 200, 200, 502]
    sandbox.set_faults("platform_api", error_rate=0.25, error_status=502)
    assert [api("GET", "/v1/account/status").status_code for _ in range(8)] == codes


def test_error_burst_knob_recovers_by_itself(api, sandbox):
    sandbox.set_faults("platform_api", error_burst=2)
    assert [api("GET", "/v1/account/status").status_code for _ in range(3)] == [503, 503, 200]


def test_control_endpoints_are_never_faulted(sandbox_settings, sandbox):
    sandbox.set_faults("platform_api", error_rate=1.0)
    url = sandbox_settings["platform_api"]["url"] + "/_sandbox/faults"
    assert requests.get(url, timeout=5).json()["error_rate"] == 1.0
    assert requests.put(url, json={"error_rate": 2}, timeout=5).status_code == 422
