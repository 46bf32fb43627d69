"""post_market_shutdown under the real scheduler, triggerer and api-server, against the stack's sandbox: the day
closed out with the agents at their off-hours replica counts as the real kubectl reads them and one end-of-day
message; positions that will not close page at P1, fail the run and leave every deployment as it was. The demo
config reads the book back 1 s apart (15 s in all)."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
import requests
from psycopg.rows import dict_row

from tradeops.calendar.sessions import sessions_for
from tradeops.config import load_config
from tradeops.daily.report import closed_session

pytestmark = pytest.mark.e2e
DAG = "post_market_shutdown"


@pytest.fixture
def shutdown(stack, kubectl_for):
    """Trigger the DAG and wait for its run; the stack's positions, replica counts, faults and this DAG's incidents
    put back afterwards (other e2e tests read the same sandbox)."""
    config = load_config()
    kubectl = kubectl_for(stack.settings["kubernetes"]["kubeconfig"])
    scaled = [d.name for d in config.kubernetes.deployments if d.role in config.trading_day.scale_roles]
    replicas = {name: kubectl.json("get", "deployment", name)["spec"]["replicas"] for name in scaled}
    platform_dsn = stack.settings["postgres"]["platform_dsn"]
    with psycopg.connect(platform_dsn) as conn:
        positions = conn.execute("SELECT symbol, qty FROM positions").fetchall()
    mode = monitoring_mode(stack)
    stack.client.wait_for_dags({DAG})
    stack.client.set_paused(DAG, False)

    def run(timeout: float = 420) -> dict:
        run_id = stack.client.trigger(DAG)
        finished = stack.client.wait_for_run(DAG, run_id, timeout=timeout)
        states = stack.client.task_states(DAG, run_id)
        return {**finished, "states": states}

    run.kubectl = kubectl  # type: ignore[attr-defined]
    run.book = {symbol: float(qty) for symbol, qty in positions if qty}  # type: ignore[attr-defined]
    run.scaled = scaled  # type: ignore[attr-defined]
    yield run
    stack.client.set_paused(DAG, True)
    stack.sandbox.clear_faults("platform_api")
    monitoring_mode(stack, mode)
    with psycopg.connect(platform_dsn) as conn:
        for symbol, qty in positions:
            conn.execute("UPDATE positions SET qty = %s WHERE symbol = %s", (qty, symbol))
    for name, count in replicas.items():
        kubectl.ok("scale", f"deployment/{name}", f"--replicas={count}")
    with psycopg.connect(stack.settings["postgres"]["state_dsn"]) as conn:
        conn.execute(
            "UPDATE tradeops.incidents SET status = 'resolved', resolved_at = now(), resolved_by = 'e2e (cleanup)' "
            "WHERE status <> 'resolved' AND dag_id = %s",
            (DAG,),
        )


def monitoring_mode(stack, mode: str | None = None) -> str:
    """The platform monitoring's mode (set to ``mode`` first when given)."""
    url = stack.settings["platform_api"]["url"] + "/v1/monitoring/mode"
    headers = {"Authorization": f"Bearer {stack.settings['secrets']['platform_api_token']}"}
    if mode:
        body = {"mode": mode, "reason": "e2e"}
        requests.put(url, json=body, headers=headers, timeout=10).raise_for_status()
    response = requests.get(url, headers=headers, timeout=10)
    response.raise_for_status()
    return response.json()["mode"]


def end_of_day(stack) -> list[str]:
    session = closed_session(sessions_for("XNYS"), datetime.now(UTC))
    return [m["text"] for m in stack.sandbox.slack_messages() if f"End of day {session.day:%a %Y-%m-%d}" in m["text"]]


def open_positions(stack) -> dict[str, float]:
    with psycopg.connect(stack.settings["postgres"]["platform_dsn"]) as conn:
        return {s: float(q) for s, q in conn.execute("SELECT symbol, qty FROM positions WHERE qty <> 0")}


def test_the_day_closes_out_with_the_agents_at_off_hours(stack, shutdown):
    config = load_config()
    for name in shutdown.scaled:  # as the trading day leaves them
        count = config.kubernetes.deployment(name).replicas.market_hours
        shutdown.kubectl.ok("scale", f"deployment/{name}", f"--replicas={count}")
    monitoring_mode(stack, config.trading_day.monitoring_modes.market_hours)
    before = end_of_day(stack)

    run = shutdown()

    assert run["state"] == "success", run["states"]
    assert run["states"]["verdict"] == "skipped"
    assert {s for t, s in run["states"].items() if t != "verdict"} == {"success"}, run["states"]
    assert open_positions(stack) == {}
    for name in shutdown.scaled:
        deployment = shutdown.kubectl.json("get", "deployment", name)
        want = config.kubernetes.deployment(name).replicas.off_hours
        assert (deployment["spec"]["replicas"], deployment["status"].get("readyReplicas")) == (want, want), name
    assert monitoring_mode(stack) == config.trading_day.monitoring_modes.off_hours
    new = [text for text in end_of_day(stack) if text not in before]
    assert len(new) == 1 and new[0].endswith(": complete"), new


def test_positions_that_will_not_close_page_at_p1_and_nothing_is_scaled_down(stack, shutdown):
    stuck = sorted(shutdown.book)[0]
    stack.sandbox.set_faults("platform_api", stuck_positions=[stuck])
    replicas = {name: shutdown.kubectl.json("get", "deployment", name)["spec"]["replicas"] for name in shutdown.scaled}
    before = end_of_day(stack)

    run = shutdown()

    assert run["state"] == "failed"
    states = run["states"]
    assert (states["close_positions"], states["scale_down"], states["verdict"]) == (
        "failed",
        "upstream_failed",
        "failed",
    )
    assert open_positions(stack) == {stuck: shutdown.book[stuck]}
    after = {name: shutdown.kubectl.json("get", "deployment", name)["spec"]["replicas"] for name in shutdown.scaled}
    assert after == replicas, "nothing scaled down with a position open"
    with psycopg.connect(stack.settings["postgres"]["state_dsn"], row_factory=dict_row) as conn:
        [incident] = conn.execute(
            "SELECT * FROM tradeops.incidents WHERE dedup_key LIKE 'positions:%%' AND status <> 'resolved'"
        ).fetchall()
    assert incident["severity"] == "P1" and incident["run_id"] == run["dag_run_id"]
    assert f"{stuck} {shutdown.book[stuck]:g}" in incident["summary"]
    new = [text for text in end_of_day(stack) if text not in before]
    assert new and all("FAILED (close_positions" in text for text in new), new
    assert not any("complete" in text for text in new)


def test_a_cluster_that_refuses_the_scale_down_fails_the_day_and_pages(stack, shutdown):
    stack.sandbox.set_faults("kubernetes", error_rate=1.0, error_status=503)
    try:
        before = end_of_day(stack)
        run = shutdown(timeout=600)
    finally:
        stack.sandbox.clear_faults("kubernetes")

    assert run["state"] == "failed"
    states = run["states"]
    assert (states["close_positions"], states["scale_down"], states["wait_scale_down"]) == (
        "success",
        "failed",
        "upstream_failed",
    )
    assert (states["end_of_day_report"], states["verdict"]) == ("success", "failed")
    assert open_positions(stack) == {}, "the book was closed before the cluster was touched"
    with psycopg.connect(stack.settings["postgres"]["state_dsn"], row_factory=dict_row) as conn:
        [incident] = conn.execute(
            "SELECT * FROM tradeops.incidents WHERE dedup_key = %s AND status <> 'resolved'",
            (f"runbook:{DAG}",),
        ).fetchall()
    assert incident["run_id"] == run["dag_run_id"]
    new = [text for text in end_of_day(stack) if text not in before]
    assert len(new) == 1 and "FAILED" in new[0] and "scale_down" in new[0], new
