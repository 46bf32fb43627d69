"""The sandbox state ``incident_response`` may change, put back after each test (other tests share the sandbox):
the trading services' replicas and annotations, the gateway Service's type, the open positions, and the incidents
the test opened (resolved); and the task context a runbook step runs with."""

from __future__ import annotations

import types
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from tradeops.rollback.forms import trading_services

GATEWAY = "api-gateway"


@pytest.fixture
def xcoms() -> dict[str, object]:
    """What the upstream tasks returned, by task id, as ``context``'s ``xcom_pull`` answers; a run that is not a
    dry run until the test says otherwise."""
    return {"check_incident": {"dry_run": False}}


@pytest.fixture
def context(airflow_connections, xcoms):
    """A runbook step's task context: a manual run of ``incident_response`` triggered by alice, its own run id per
    test (the platform's idempotency keys and the trail's entries are per run)."""
    ti = types.SimpleNamespace(
        dag_id="incident_response",
        run_id=f"manual__tests_{uuid.uuid4().hex[:8]}",
        task_id="step",
        try_number=1,
        xcom_push=lambda **_: None,
        xcom_pull=lambda task_ids: xcoms.get(task_ids),
    )
    run = types.SimpleNamespace(triggering_user_name="alice", run_after=datetime.now(UTC), run_type="manual")
    return {"ti": ti, "dag_run": run}


@pytest.fixture
def cluster(config, kubectl):
    """The trading services' replica counts and the gateway Service's type, as read with the real kubectl, put
    back afterwards (and the stop's saved-count annotation removed)."""
    names = trading_services(config)

    def snapshot() -> dict:
        replicas = {name: kubectl.json("get", "deployment", name)["spec"]["replicas"] for name in names}
        return {"replicas": replicas, "gateway": kubectl.json("get", "service", GATEWAY)["spec"]["type"]}

    before = snapshot()
    yield types.SimpleNamespace(names=names, before=before, snapshot=snapshot)
    for name, count in before["replicas"].items():
        kubectl.ok("scale", f"deployment/{name}", f"--replicas={count}")
        kubectl("annotate", f"deployment/{name}", "tradeops.io/replicas-before-scale-")
    if kubectl.json("get", "service", GATEWAY)["spec"]["type"] != before["gateway"]:
        kubectl.ok("patch", "service", GATEWAY, "--type=merge", "-p", f'{{"spec":{{"type":"{before["gateway"]}"}}}}')


@pytest.fixture
def book(sandbox_settings):
    """The sandbox's open positions ``{symbol: qty}`` (the platform's database); every quantity put back after."""
    dsn = sandbox_settings["postgres"]["platform_dsn"]
    with psycopg.connect(dsn) as conn:
        before = conn.execute("SELECT symbol, qty FROM positions").fetchall()

    def read() -> dict[str, float]:
        with psycopg.connect(dsn) as conn:
            return {s: float(q) for s, q in conn.execute("SELECT symbol, qty FROM positions WHERE qty <> 0")}

    yield types.SimpleNamespace(before={s: float(q) for s, q in before if q}, read=read)
    with psycopg.connect(dsn) as conn:
        for symbol, qty in before:
            conn.execute("UPDATE positions SET qty = %s WHERE symbol = %s", (qty, symbol))


@pytest.fixture
def incident(sandbox_settings, airflow_connections):
    """``incident(severity)``: a new incident opened by hand; every incident the test opened resolved after."""
    from tradeops.incidents import store
    from tradeops.incidents.models import IncidentSource, NewIncident
    from tradeops.incidents.service import IncidentService

    dsn = sandbox_settings["postgres"]["state_dsn"]
    store.migrate(dsn)
    service = IncidentService(dsn=dsn)
    opened: list[int] = []

    def make(severity: str = "P2"):
        new = NewIncident(
            dedup_key=f"tests:incident_response:{uuid.uuid4().hex}",
            source=IncidentSource.MANUAL,
            severity=severity,
            title="tests: the trading platform is down",
        )
        found = service.open(new).incident
        opened.append(found.id)
        return found

    make.service = service  # type: ignore[attr-defined]
    yield make
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "UPDATE tradeops.incidents SET status = 'resolved', resolved_at = now(), resolved_by = 'tests (cleanup)' "
            "WHERE status <> 'resolved' AND (id = ANY(%s) OR dedup_key = 'runbook:incident_response')",
            (opened,),
        )
