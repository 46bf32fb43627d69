"""The incidents page on the real api-server (the plugin's app mounted under /tradeops, Airflow's own auth), in a real
headless browser: an incident opened from Airflow's form is acknowledged with a click on the page, as the Airflow
user who is logged in."""

from __future__ import annotations

import pytest

from tests.browser import Browser, require_chromium
from tests.e2e.test_forms_e2e import post_run

pytestmark = pytest.mark.e2e


def test_an_incident_is_acknowledged_from_the_page_as_the_airflow_user(stack, tmp_path):
    require_chromium()
    stack.client.wait_for_dags({"incident_open"})
    stack.client.set_paused("incident_open", False)
    response = post_run(stack, "incident_open", {"title": "Quotes look stale on the page", "severity": "P3"})
    assert response.status_code == 200, response.text[:300]
    run = response.json()
    assert stack.client.wait_for_run("incident_open", run["dag_run_id"], timeout=120)["state"] == "success"
    incident_id = stack.client.xcom("incident_open", run["dag_run_id"], "open")["incident_id"]
    user = run["triggering_user_name"]  # the local stack's simple auth manager logs everyone in as this admin
    card = f"#incident-{incident_id}"

    with Browser(tmp_path / "chromium-profile") as browser:
        browser.goto(f"{stack.client.url}/tradeops/incidents?status=open")
        assert browser.text("#user") == user
        [cookie] = [c for c in browser.cookies() if c["name"] == "tradeops_csrf"]
        assert cookie["path"] == "/tradeops" and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert browser.evaluate(f"document.querySelector('{card} form.acknowledge').getAttribute('action')") == (
            f"/tradeops/incidents/{incident_id}/acknowledge"
        )
        browser.type(f"{card} form.acknowledge input[name=note]", "on it from the page")
        browser.click(f"{card} form.acknowledge button", navigates=True)

        assert browser.url().startswith(
            f"{stack.client.url}/tradeops/incidents?status=open&done=acknowledged&n={incident_id}"
        )
        assert browser.text("#notice") == f"Incident #{incident_id} acknowledged by {user}."
        assert browser.evaluate(f"document.querySelector('{card}')") is None, "no longer open: filtered out"

    incident, timeline = stack.client.incident(incident_id)
    assert (incident["status"], incident["acknowledged_by"]) == ("acknowledged", user)
    assert [(e["actor"], e["detail"]) for e in timeline if e["kind"] == "acknowledged"] == [
        (user, {"note": "on it from the page"})
    ]
