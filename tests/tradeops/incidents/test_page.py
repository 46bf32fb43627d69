"""The incidents page over HTTP (FastAPI's TestClient) against the sandbox's PostgreSQL: links, a timeline in words,
filters, silences, and the actions as the logged-in Airflow user; cross-site requests refused (403) and bad input
refused (400), both changing nothing."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, time, timedelta
from types import SimpleNamespace

import pytest

from tradeops.incidents import store
from tradeops.incidents.app import create_app
from tradeops.incidents.models import NewIncident
from tradeops.incidents.response_times import weeks_up_to
from tradeops.reporting.links import airflow_base_url

USER = "oncall-alice"
HOST = "http://airflow.test"
RUN = "manual__2026-11-30T10:00:00+00:00"


def make_client(user: str | None = USER):
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    app = create_app()
    if user:
        app.dependency_overrides[get_user] = lambda: SimpleNamespace(get_name=lambda: user)
    return TestClient(app, base_url=HOST)


@pytest.fixture
def client(airflow_connections):
    """A logged-in browser, as far as the app can tell: it has loaded the page once (and got its token cookie)."""
    client = make_client()
    assert client.get("/incidents", params={"limit": 1}).status_code == 200
    return client


@pytest.fixture
def dag() -> str:
    """A DAG id of this test's own, to filter the page to its incidents (tests share one database)."""
    return f"page_{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
def _end_this_tests_silences(request):
    """Silences of this test's keys end with it (so the next tests' pages list only theirs)."""
    uses_db = {"key", "state_dsn"} <= set(request.fixturenames)
    key, dsn = (request.getfixturevalue("key"), request.getfixturevalue("state_dsn")) if uses_db else ("", "")
    yield
    if uses_db:
        with store.connect(dsn) as conn:
            conn.execute(
                "UPDATE tradeops.silences SET ends_at = now(), ended_at = now(), ended_by = 'tests (cleanup)' "
                "WHERE ends_at > now() AND starts_with(matcher, %s)",
                (key,),
            )


def post(client, path: str, fields: dict | list | None = None, headers: dict | None = None, token: bool = True):
    """A form POST as the page's forms send it: same origin, with the page's token."""
    data: dict[str, list[str]] = {}
    for name, value in fields.items() if isinstance(fields, dict) else fields or []:
        data.setdefault(name, []).append(value)
    if token:
        data.setdefault("csrf_token", []).append(client.cookies.get("tradeops_csrf"))
    return client.post(path, data=data, headers={"Origin": HOST} | (headers or {}), follow_redirects=False)


def open_incident(incidents, key: str, dag: str | None, severity: str = "P2", title: str = "", task: str = "load"):
    new = NewIncident(
        dedup_key=key,
        source="task_failure",
        severity=severity,
        title=title or f"{dag} failed at {task}",
        summary=f"`{task}` failed: exit code 1",
        dag_id=dag,
        run_id=RUN if dag else None,
        task_id=task if dag else None,
    )
    return incidents.open(new).incident


def article(html: str, incident_id: int) -> str:
    """The part of the page about one incident."""
    start = html.index(f'id="incident-{incident_id}"')
    return html[start : html.index("</article>", start)]


def listed(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<article class="incident \w+" id="incident-(\d+)"', html)]


def snapshot(state_dsn: str) -> dict:
    """Everything an action could change."""
    with store.connect(state_dsn) as conn:
        return {
            table: conn.execute(f"SELECT * FROM tradeops.{table} ORDER BY id").fetchall()
            for table in ("incidents", "incident_events", "silences", "outbox")
        }


def test_each_incident_links_its_run_task_log_slack_thread_and_runbook_step(incidents, key, dag, client):
    incident = open_incident(incidents, key, dag, title=f"{dag} failed <b>at</b> load")
    incidents.acknowledge(incident.id, "@bob (Slack)", "on it")
    incident = incidents.get(incident.id)
    assert incident.slack_channel and incident.slack_ts, "the sandbox's Slack took the page: the thread exists"

    html = client.get("/incidents", params={"dag_id": dag}).text
    mine = article(html, incident.id)

    run = f"{airflow_base_url()}/dags/{dag}/runs/manual__2026-11-30T10%3A00%3A00%2B00%3A00"
    assert f'<a class="run" href="{run}">DAG run</a>' in mine
    assert f'<a class="task-log" href="{run}/tasks/load">Task log (load)</a>' in mine
    slack = f"https://slack.com/app_redirect?channel={incident.slack_channel}&amp;message_ts={incident.slack_ts}"
    assert f'<a class="slack" href="{slack}">Slack thread</a>' in mine
    assert f'<a class="runbook" href="https://runbooks.quantnova.internal/grandmodel/{dag}">Runbook step</a>' in mine
    assert f"#{incident.id} {dag} failed &lt;b&gt;at&lt;/b&gt; load" in mine, "escaped, never markup"
    assert "acknowledged by <strong>@bob (Slack)</strong>" in mine
    assert "paged up to <strong>L1 On-call engineer</strong> (#trading-alerts @oncall-primary)" in mine


def test_the_timeline_reads_as_sentences_not_json(incidents, key, dag, client):
    incident = open_incident(incidents, key, dag, severity="P2")
    incidents.engine.process_due(incident.escalation_anchor + timedelta(seconds=8))  # demo policy: P2 L2 at 8 s
    incidents.outbox.deliver()
    incidents.acknowledge(incident.id, "@bob (Slack)", 'looking at "load"')

    mine = article(client.get("/incidents", params={"dag_id": dag}).text, incident.id)
    rows = [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr class=[^>]*>(.*?)</tr>", mine, re.S)
    ]
    trail = [(what, who, detail) for _when, _since, what, who, detail in rows]
    assert trail[0] == ("Opened", "tradeops", "P2 task failure: `load` failed: exit code 1")
    assert ("Paged L1 (On-call engineer)", "tradeops", "to #trading-alerts @oncall-primary") in trail
    assert ("Escalated to L2 (Operations manager)", "tradeops", "to #ops-management @ops-manager") in trail
    assert ("Delivered to Slack", "tradeops", "first message (the thread) in #trading-alerts") in trail
    assert [t for t in trail if t[0] == "Acknowledged"] == [
        ("Acknowledged", "@bob (Slack)", "note: looking at &#34;load&#34;")
    ], "escaped"
    assert all(not detail.startswith("{") for _what, _who, detail in trail), "no raw JSON"
    assert re.match(r"^\d\d:\d\d:\d\d$", rows[0][0]) and rows[0][1] == "+0s"


def test_filters_by_status_severity_and_dag(incidents, key, dag, client):
    p1 = open_incident(incidents, f"{key}:a", dag, severity="P1")
    p2 = open_incident(incidents, f"{key}:b", dag, severity="P2", task="b")
    p3 = open_incident(incidents, f"{key}:c", dag, severity="P3", task="c")
    other = open_incident(incidents, f"{key}:d", f"{dag}_other", severity="P1")
    incidents.acknowledge(p2.id, "@bob (Slack)")
    incidents.resolve(p3.id, "@bob (Slack)")

    def shown(**params) -> list[int]:
        response = client.get("/incidents", params=params)
        assert response.status_code == 200
        return listed(response.text)

    assert shown(dag_id=dag) == [p3.id, p2.id, p1.id], "newest first"
    assert shown(dag_id=dag, status="active") == [p2.id, p1.id]
    assert shown(dag_id=dag, status="open") == [p1.id]
    assert shown(dag_id=dag, status="acknowledged") == [p2.id]
    assert shown(dag_id=dag, status="resolved") == [p3.id]
    assert shown(dag_id=dag, severity="P1") == [p1.id]
    assert shown(dag_id=f"{dag}_other") == [other.id]
    assert other.id in shown(severity="P1") and p1.id in shown(severity="P1")
    assert shown(dag_id=dag, limit=2) == [p3.id, p2.id]
    html = client.get("/incidents", params={"dag_id": dag, "status": "active"}).text
    assert f"<option selected>{dag}</option>" in html and '<option value="active" selected>' in html


@pytest.mark.parametrize(
    "params",
    [{"status": "closed"}, {"severity": "P5"}, {"dag_id": "a b"}, {"dag_id": "<x>"}, {"limit": "0"}, {"limit": "x"}],
)
def test_a_filter_that_is_not_one_gets_400(client, params):
    response = client.get("/incidents", params=params)
    assert response.status_code == 400
    assert 'id="problem"' in response.text and "<x>" not in response.text


def test_acknowledge_and_resolve_from_the_page_as_the_logged_in_user(incidents, key, dag, client, messages_of):
    incident = open_incident(incidents, key, dag)

    response = post(
        client,
        f"/incidents/{incident.id}/acknowledge",
        {"note": "looking", "actor": "mallory", "f_dag_id": dag, "f_status": "active"},
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == (
        f"/incidents?status=active&dag_id={dag}&done=acknowledged&n={incident.id}#incident-{incident.id}"
    )
    row = incidents.get(incident.id)
    assert (row.status, row.acknowledged_by) == ("acknowledged", USER), "the logged-in user, never a form's name"
    page = client.get(response.headers["location"]).text
    assert f"Incident #{incident.id} acknowledged by {USER}." in page

    response = post(client, f"/incidents/{incident.id}/resolve", {"note": "restarted the pod"})
    assert response.status_code == 303
    assert response.headers["location"] == f"/incidents?done=resolved&n={incident.id}#incident-{incident.id}"
    row = incidents.get(incident.id)
    assert (row.status, row.resolved_by) == ("resolved", USER)
    trail = [
        (e.kind, e.actor, e.detail) for e in incidents.timeline(incident.id) if e.kind in ("acknowledged", "resolved")
    ]
    assert trail == [("acknowledged", USER, {"note": "looking"}), ("resolved", USER, {"note": "restarted the pod"})]
    thread = [m["text"] for m in messages_of(incident.id, "#trading-alerts")]
    assert any(text.startswith(f":eyes: Acknowledged by {USER}") for text in thread), "Slack hears it as from a click"
    assert "<form" not in article(client.get("/incidents", params={"dag_id": dag}).text, incident.id)


def test_silence_preview_set_list_and_end_from_the_page(incidents, key, dag, client):
    critical = open_incident(incidents, f"{key}:gateway", dag, severity="P1")
    ordinary = open_incident(incidents, f"{key}:report", dag, severity="P3", task="report")
    fields = {"target": f"{key}:", "reason": "vendor maintenance", "minutes": "30", "f_dag_id": dag}

    preview = post(client, "/silences", fields | {"preview": "yes"})
    assert preview.status_code == 200
    box = " ".join(preview.text[preview.text.index('id="preview"') :].split())
    assert f'would mute now: <a href="#incident-{ordinary.id}">#{ordinary.id}</a> P3' in box
    assert f'Would keep paging</strong> (P1/security, not confirmed): <a href="#incident-{critical.id}">' in box
    assert f'value="{key}:"' in preview.text and 'value="vendor maintenance"' in preview.text, "the form kept"
    assert incidents.active_silences() == [s for s in incidents.active_silences() if not s.matcher.startswith(key)]

    response = post(client, "/silences", fields)
    assert response.status_code == 303, response.text
    [made] = [s for s in incidents.active_silences() if s.matcher == f"{key}:"]
    assert response.headers["location"] == f"/incidents?dag_id={dag}&done=silenced&n={made.id}#silence-{made.id}"
    assert (made.author, made.reason, made.covers_critical) == (USER, "vendor maintenance", False)
    assert timedelta(minutes=29) < made.ends_at - made.starts_at <= timedelta(minutes=30)
    assert incidents.get(ordinary.id).silenced_until == made.ends_at
    assert incidents.get(critical.id).silenced_until is None, "P1 keeps paging without the confirmation"

    response = post(
        client,
        "/silences",
        {"target": f"#{critical.id}", "reason": "known", "minutes": "15"} | {"covers_critical": "yes"},
    )
    assert response.status_code == 303
    [confirmed] = [s for s in incidents.active_silences() if s.matcher == f"{key}:gateway"]
    assert confirmed.covers_critical and incidents.get(critical.id).silenced_until == confirmed.ends_at

    html = client.get("/incidents", params={"dag_id": dag}).text
    row = html[html.index(f'id="silence-{made.id}"') :].split("</tr>")[0]
    assert f"<code>{key}:</code>" in row and "keep paging" in row and USER in row and "vendor maintenance" in row
    assert f'action="/silences/{made.id}/end"' in row
    assert "muted too (confirmed)" in html[html.index(f'id="silence-{confirmed.id}"') :].split("</tr>")[0]
    assert "silenced until" in article(html, ordinary.id)

    response = post(client, f"/silences/{made.id}/end")
    assert response.status_code == 303
    assert made.id not in [s.id for s in incidents.active_silences()]
    with store.connect(incidents.dsn) as conn:
        ended = conn.execute("SELECT ended_by FROM tradeops.silences WHERE id = %s", (made.id,)).fetchone()
    assert ended["ended_by"] == USER


def response_time_cell(html: str, severity: str, week) -> tuple[str, str]:
    """The text of the response-times table's cell of this severity and week, and its title."""
    row = html[html.index(f'<tr data-severity="{severity}">') :]
    found = re.search(rf'<td data-week="{week}"(?: title="([^"]*)")?[^>]*>(.*?)</td>', row[: row.index("</tr>")], re.S)
    assert found, f"no cell for {severity} in the week of {week}"
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(2)).split()), found.group(1) or ""


def test_the_page_shows_mtta_and_mttr_per_severity_and_week(past_incidents, client):
    weeks = weeks_up_to(datetime.now(UTC))
    week = weeks[-4]  # three weeks ago: the other tests' incidents are of this week
    tuesday = datetime.combine(week + timedelta(days=1), time(9), UTC)
    for acknowledged, resolved in ((60, 1200), (120, 1500), (360, 4860)):
        past_incidents("P4", tuesday, timedelta(seconds=acknowledged), timedelta(seconds=resolved))
    past_incidents("P4", tuesday + timedelta(days=5), None, None)  # still open
    past_incidents("security", tuesday, timedelta(seconds=45))  # acknowledged, not resolved

    html = client.get("/incidents").text

    section = html[html.index('<section id="response-times">') :]
    week_heading = r'<th title="the ISO week of Monday ([\d-]+)">week (\d+)<br><span class="muted">(\w+ \d+)<'
    headings = re.findall(week_heading, section)
    assert headings == [(str(w), str(w.isocalendar().week), w.strftime("%b %d")) for w in weeks], "oldest first"
    assert section.count('<td class="legend"><div>MTTA</div><div>MTTR</div><div>n</div></td>') == 5
    assert response_time_cell(html, "P4", week) == (
        "3m (2m) 42m (25m) 4",
        "4 opened, 3 acknowledged, 3 resolved",
    )
    assert response_time_cell(html, "security", week) == (
        "45s (45s) – 1",
        "1 opened, 1 acknowledged, 0 resolved",
    )
    assert response_time_cell(html, "P3", week) == ("–", ""), "no incident"
    assert re.findall(r'<tr data-severity="([^"]+)">', section) == ["P1", "security", "P2", "P3", "P4"]


def test_the_response_times_as_json_for_tools(past_incidents, client):
    weeks = weeks_up_to(datetime.now(UTC))
    past_incidents("P4", datetime.combine(weeks[-4], time(9), UTC), timedelta(seconds=60), timedelta(seconds=1200))

    body = client.get("/incidents/response-times.json").json()

    assert body["weeks"] == [str(week) for week in weeks]
    assert [cell for cell in body["response_times"] if (cell["severity"], cell["week"]) == ("P4", str(weeks[-4]))] == [
        {
            "severity": "P4",
            "week": str(weeks[-4]),
            "opened": 1,
            "acknowledged": 1,
            "mtta": 60.0,
            "mtta_median": 60.0,
            "resolved": 1,
            "mttr": 1200.0,
            "mttr_median": 1200.0,
        }
    ]
    assert make_client(user=None).get("/incidents/response-times.json").status_code in (401, 403)


BAD_INPUT = [
    ("/incidents/abc/acknowledge", {}, "whole number"),
    ("/incidents/0/acknowledge", {}, "whole number"),
    ("/incidents/999999999/acknowledge", {}, "no incident 999999999"),
    ("/incidents/{id}/acknowledge", {"note": "x" * 501}, "at most 500"),
    ("/incidents/{id}/resolve", [("note", "a"), ("note", "b")], "given once"),
    ("/incidents/{id}/acknowledge", {"f_status": "closed"}, "status must be"),
    ("/incidents/{id}/resolve", {"f_dag_id": "<x>"}, "not a DAG id"),
    ("/silences", {"target": "", "reason": "why not", "minutes": "10"}, "never empty"),
    ("/silences", {"target": "test:%", "reason": "why not", "minutes": "10"}, "prefix"),
    ("/silences", {"target": "#{id}", "reason": "  ", "minutes": "10"}, "reason"),
    ("/silences", {"target": "#{id}", "reason": "why not", "minutes": "0"}, "1 to 1440"),
    ("/silences", {"target": "#{id}", "reason": "why not", "minutes": "1441"}, "1 to 1440"),
    ("/silences", {"target": "#{id}", "reason": "why not", "minutes": "ten"}, "whole number"),
    ("/silences", {"target": "#{id}", "reason": "why not", "minutes": "5", "covers_critical": "true"}, "checkbox"),
    ("/silences", {"target": "#999999999", "reason": "why not", "minutes": "5"}, "no incident 999999999"),
    ("/silences/abc/end", {}, "whole number"),
    ("/silences/999999999/end", {}, "no silence #999999999 in effect"),
]


@pytest.mark.parametrize(("path", "fields", "says"), BAD_INPUT, ids=[f"{p} {s}" for p, _f, s in BAD_INPUT])
def test_bad_input_gets_400_and_changes_nothing(incidents, key, dag, client, state_dsn, path, fields, says):
    incident = open_incident(incidents, key, dag, severity="P1")
    if isinstance(fields, dict):
        fields = {name: value.replace("{id}", str(incident.id)) for name, value in fields.items()}
    before = snapshot(state_dsn)

    response = post(client, path.replace("{id}", str(incident.id)), fields)

    assert response.status_code == 400, response.text
    assert says in response.text.replace("&#39;", "'")
    assert snapshot(state_dsn) == before


def test_acting_twice_gets_400_the_second_time(incidents, key, dag, client, state_dsn):
    incident = open_incident(incidents, key, dag)
    assert post(client, f"/incidents/{incident.id}/acknowledge").status_code == 303
    before = snapshot(state_dsn)
    again = post(client, f"/incidents/{incident.id}/acknowledge")
    assert again.status_code == 400 and "already acknowledged" in again.text
    assert snapshot(state_dsn) == before


CROSS_SITE = {
    "no Origin or Referer": ({"Origin": ""}, True),
    "another origin": ({"Origin": "https://evil.example"}, True),
    "a sibling port": ({"Origin": "http://airflow.test:8081"}, True),
    "a null origin": ({"Origin": "null"}, True),
    "another site's referer": ({"Origin": "", "Referer": "https://evil.example/airflow.test/incidents"}, True),
    "no token": ({}, False),
}


@pytest.mark.parametrize("case", [*CROSS_SITE, "a wrong token", "a token but no cookie"])
def test_a_cross_site_request_gets_403_and_changes_nothing(incidents, key, dag, client, state_dsn, case):
    incident = open_incident(incidents, key, dag)
    before = snapshot(state_dsn)
    headers, token = CROSS_SITE.get(case, ({}, True))
    fields = {"note": "forged"}
    if case == "a wrong token":
        fields["csrf_token"], token = "A" * 43, False
    if case == "a token but no cookie":
        fields["csrf_token"], token = client.cookies.get("tradeops_csrf"), False
        client.cookies.clear()

    response = post(client, f"/incidents/{incident.id}/acknowledge", fields, headers=headers, token=token)

    assert response.status_code == 403, response.text
    assert snapshot(state_dsn) == before
    silence = post(
        client, "/silences", {"target": f"#{incident.id}", "reason": "forged", "minutes": "5"}, headers, token
    )
    assert silence.status_code == 403 and snapshot(state_dsn) == before


def test_a_same_origin_referer_is_enough_when_the_browser_sends_no_origin(incidents, key, dag, client):
    incident = open_incident(incidents, key, dag)
    headers = {"Origin": "", "Referer": f"{HOST}/incidents?dag_id={dag}"}
    assert post(client, f"/incidents/{incident.id}/acknowledge", headers=headers).status_code == 303
    assert incidents.get(incident.id).acknowledged_by == USER


def test_the_page_sets_its_token_cookie_strictly_and_keeps_it(airflow_connections):
    client = make_client()
    first = client.get("/incidents", params={"limit": 1})
    cookie = first.headers["set-cookie"]
    token = client.cookies.get("tradeops_csrf")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert f'name="csrf_token" value="{token}"' in first.text
    second = client.get("/incidents", params={"limit": 1})
    assert "set-cookie" not in second.headers and client.cookies.get("tradeops_csrf") == token


def test_the_actions_need_an_airflow_login(incidents, key, dag):
    incident = open_incident(incidents, key, dag)
    anonymous = make_client(user=None)
    for path in (f"/incidents/{incident.id}/acknowledge", "/silences", "/silences/1/end"):
        assert anonymous.post(path, data={}, headers={"Origin": HOST}).status_code in (401, 403)
    assert incidents.get(incident.id).status == "open"
