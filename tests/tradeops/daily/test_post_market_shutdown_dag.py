"""post_market_shutdown runs in-process (``dag.test()``) with its real operators against the sandbox: the platform
API (positions, trades, log archive), its PostgreSQL (the backup, the state database), Kubernetes and Slack.
Deadlines are removed from the copy (``dag.test()`` cannot run a DAG with deadlines, upstream #73428)."""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.dagtest import runnable, states
from tradeops.daily import store

DAG_ID = "post_market_shutdown"


def end_of_day_messages(sandbox, session) -> list[dict]:
    return [m for m in sandbox.slack_messages() if f"End of day {session.day:%a %Y-%m-%d}" in m["text"]]


def open_positions(sandbox_settings) -> dict[str, float]:
    with psycopg.connect(sandbox_settings["postgres"]["platform_dsn"]) as conn:
        return {s: float(q) for s, q in conn.execute("SELECT symbol, qty FROM positions WHERE qty <> 0")}


@pytest.fixture
def market_hours(config, kubectl, replicas):
    """The scaled deployments at their market-hours counts, as the day leaves them; their off-hours counts."""
    for name in replicas:
        count = config.kubernetes.deployment(name).replicas.market_hours
        kubectl.ok("scale", f"deployment/{name}", f"--replicas={count}")
    return {name: config.kubernetes.deployment(name).replicas.off_hours for name in replicas}


def test_the_day_is_closed_out_reported_and_a_second_run_changes_nothing(
    dagbag, airflow_db, airflow_connections, quick_close_out, book, market_hours, trading_hours_monitoring,
    state_db, session_today, sandbox, sandbox_settings, kubectl, platform_api,
):  # fmt: skip
    assert book, "the sandbox seeds open positions"
    before = len(end_of_day_messages(sandbox, session_today))

    run = runnable(dagbag, DAG_ID).test()

    task_states = states(run)
    assert run.state == "success", task_states
    assert task_states.pop("verdict") == "skipped"
    assert set(task_states.values()) == {"success"}, task_states
    assert open_positions(sandbox_settings) == {}
    for name, count in market_hours.items():
        deployment = kubectl.json("get", "deployment", name)
        assert (deployment["spec"]["replicas"], deployment["status"].get("readyReplicas")) == (count, count), name
    assert platform_api("GET", "/v1/monitoring/mode")["mode"] == trading_hours_monitoring
    row = store.read(state_db, session_today.day)
    assert row["positions_closed"] == len(book) and row["positions_open"] == 0
    assert row["trades"] > 0 and row["backup_bytes"] > 0 and row["log_archive_bytes"] > 0
    assert row["performance"]["timeframe"] == "1d" and row["run_id"] == run.run_id
    reports = airflow_db / "reports" / DAG_ID
    trading = json.loads((reports / f"{session_today.day}-trading.json").read_text())
    assert trading["trades"] == row["trades"] and {s["name"] for s in trading["by_strategy"]} >= {"flatten"}
    eod = json.loads((reports / f"{session_today.day}-eod.json").read_text())
    assert eod["outcome"] == "complete"
    assert eod["results"]["log_archive"]["name"] == f"grandmodel-logs-{session_today.day:%Y.%m.%d}.tar.zst"
    [message] = end_of_day_messages(sandbox, session_today)[before:]
    assert message["text"].endswith(": complete")

    again = runnable(dagbag, DAG_ID).test()

    assert again.state == "success", states(again)
    assert open_positions(sandbox_settings) == {}
    assert again.get_task_instance("close_positions").xcom_pull(task_ids="close_positions")["closed"] == 0
    assert len(end_of_day_messages(sandbox, session_today)) == before + 1, "no second end-of-day message"
    second = store.read(state_db, session_today.day)
    assert second["run_id"] == again.run_id
    assert {k: second[k] for k in ("trades", "realized_pnl", "positions_open")} == {
        k: row[k] for k in ("trades", "realized_pnl", "positions_open")
    }
    with psycopg.connect(state_db) as conn:
        [(rows,)] = conn.execute("SELECT count(*) FROM tradeops.daily_metrics WHERE session_date = %s",
                                 (session_today.day,))  # fmt: skip
    assert rows == 1


def test_positions_that_will_not_close_page_at_p1_and_nothing_is_scaled_down(
    dagbag, airflow_db, airflow_connections, quick_close_out, book, replicas, trading_hours_monitoring, state_db,
    session_today, sandbox, sandbox_settings, kubectl, platform_api, config,
):  # fmt: skip
    stuck = sorted(book)[0]
    sandbox.set_faults("platform_api", stuck_positions=[stuck])
    before = end_of_day_messages(sandbox, session_today)

    run = runnable(dagbag, DAG_ID).test()

    task_states = states(run)
    assert run.state == "failed"
    assert task_states["close_positions"] == "failed" and task_states["verdict"] == "failed"
    assert task_states["scale_down"] == "upstream_failed" and task_states["wait_scale_down"] == "upstream_failed"
    assert task_states["monitoring_mode"] == "upstream_failed"
    assert platform_api("GET", "/v1/monitoring/mode")["mode"] == config.trading_day.monitoring_modes.market_hours
    assert task_states["end_of_day_report"] == "success"
    assert open_positions(sandbox_settings) == {stuck: book[stuck]}, "the others were closed"
    for name, count in replicas.items():
        assert kubectl.json("get", "deployment", name)["spec"]["replicas"] == count, f"{name} was scaled"
    with psycopg.connect(state_db, row_factory=dict_row) as conn:
        incident = conn.execute(
            "SELECT * FROM tradeops.incidents WHERE dedup_key = %s AND status <> 'resolved'",
            (f"positions:{session_today.day}",),
        ).fetchone()
        runbook = conn.execute(
            "SELECT id FROM tradeops.incidents WHERE dedup_key = %s AND status <> 'resolved'",
            ("runbook:post_market_shutdown",),
        ).fetchall()
    assert incident["severity"] == "P1" and incident["task_id"] == "close_positions"
    assert runbook == [], "the P1 says it: the runbook-failure policy pages nothing more"
    assert f"{stuck} {book[stuck]:g}" in incident["summary"]
    assert incident["details"]["still_open"] == [{"symbol": stuck, "qty": book[stuck]}]
    new = [m["text"] for m in end_of_day_messages(sandbox, session_today) if m not in before]
    assert new and all("FAILED (close_positions" in text for text in new), new
    assert not any(text.endswith(": complete") for text in new)
    assert store.read(state_db, session_today.day)["positions_open"] == 1
