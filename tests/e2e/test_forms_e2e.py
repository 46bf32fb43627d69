"""The manual forms through the REST API of a running Airflow: every invalid input of every form answers 400 and
creates no run; the CLI (`airflow dags trigger --conf`) refuses the change runbooks' injection-shaped input with a
non-zero exit and no run; a valid one runs, and the incident's audit trail names the authenticated user who
triggered it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from urllib.parse import quote

import pytest

from tests.tradeops.incidents.test_action_dags import INVALID

pytestmark = pytest.mark.e2e
FORM_DAGS = sorted({dag_id for dag_id, _, _ in INVALID})


def post_run(stack, dag_id: str, conf: dict):
    return stack.client.session.post(
        f"{stack.client.url}/api/v2/dags/{quote(dag_id)}/dagRuns", json={"logical_date": None, "conf": conf}, timeout=30
    )


def test_every_invalid_form_is_refused_with_400_and_no_run(stack):
    stack.client.wait_for_dags(set(FORM_DAGS))
    runs_before = {dag_id: len(stack.client.dag_runs(dag_id)) for dag_id in FORM_DAGS}
    for dag_id, conf, _ in INVALID:
        response = post_run(stack, dag_id, conf)
        assert response.status_code == 400, (dag_id, conf, response.status_code, response.text[:300])
        assert "param" in str(response.json()["detail"]).lower(), (dag_id, conf, response.text[:300])
    assert {dag_id: len(stack.client.dag_runs(dag_id)) for dag_id in FORM_DAGS} == runs_before


@pytest.mark.parametrize(
    ("dag_id", "conf"),
    [
        ("emergency_rollback", {"target": "$(id)", "reason": "bad fills", "confirm": True}),
        ("blue_green_deploy", {"version": "1.2.3; rm -rf /", "services": ["auth-service"], "reason": "ship it"}),
    ],
)
def test_the_cli_refuses_an_invalid_form_with_a_non_zero_exit_and_no_run(stack, dag_id, conf):
    stack.client.wait_for_dags({dag_id})
    runs_before = len(stack.client.dag_runs(dag_id))
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "trigger", dag_id, "--conf", json.dumps(conf)],
        env=stack.airflow.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0, result.stdout[-1000:]
    assert re.search(r"does not match|should not be valid", result.stdout + result.stderr), result.stderr[-1000:]
    assert len(stack.client.dag_runs(dag_id)) == runs_before


def test_a_valid_form_runs_as_the_authenticated_user(stack):
    stack.client.wait_for_dags({"incident_open"})
    stack.client.set_paused("incident_open", False)
    response = post_run(stack, "incident_open", {"title": "Fills look delayed", "severity": "P3", "actor": "the-ceo"})
    assert response.status_code == 200, response.text[:300]
    run = response.json()
    user = run["triggering_user_name"]
    assert user and user != "the-ceo"
    finished = stack.client.wait_for_run("incident_open", run["dag_run_id"], timeout=120)
    assert finished["state"] == "success"
    opened = stack.client.xcom("incident_open", run["dag_run_id"], "open")
    assert opened["by"] == user
    _, timeline = stack.client.incident(opened["incident_id"])
    assert [e["actor"] for e in timeline if e["kind"] == "opened"] == [user]
