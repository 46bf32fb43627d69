"""The daily operations report's numbers and page, from given records (no I/O): MTTA/MTTR from an audit trail, the
recommendations, the charts as well-formed SVG, and the page's size with every chart and section in it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest

from tradeops.calendar.sessions import Session, sessions_for
from tradeops.incidents.models import EventKind, Incident, IncidentEvent, IncidentSource, IncidentStatus
from tradeops.reporting.charts import Bar, bar_chart, line_chart
from tradeops.reporting.daily_ops import (
    Component,
    DayReport,
    Performance,
    ReportWindow,
    Security,
    Trading,
    incident_times,
    mean_time,
    recommendations,
    report_window,
    runbook_events,
    runbook_runs,
)
from tradeops.reporting.operators import render_report, report_charts, slack_summary, span

SVG = "{http://www.w3.org/2000/svg}"
OPEN = datetime(2026, 11, 27, 14, 30, tzinfo=UTC)
SESSION = Session(date(2026, 11, 27), OPEN, datetime(2026, 11, 27, 18, 0, tzinfo=UTC))  # an early close


def incident(id_: int, severity: str = "P2", *, opened: datetime = OPEN, status: str = "resolved", **kw) -> Incident:
    fields = {
        "id": id_,
        "dedup_key": f"k{id_}",
        "source": IncidentSource.CHECK,
        "severity": severity,
        "title": f"incident {id_}",
        "summary": "",
        "dag_id": None,
        "run_id": None,
        "task_id": None,
        "status": IncidentStatus(status),
        "level": 1,
        "loop": 0,
        "escalation_anchor": opened,
        "opened_at": opened,
        "last_seen_at": opened,
        "occurrences": 1,
        "acknowledged_at": None,
        "acknowledged_by": None,
        "resolved_at": None,
        "resolved_by": None,
        "last_update_at": opened,
        "silenced_until": None,
        "next_action_at": None,
        "slack_channel": None,
        "slack_ts": None,
        "war_room": None,
        "details": {},
    }
    fields.update(kw)
    return Incident(**fields)  # type: ignore[arg-type]


def event(id_: int, kind: EventKind, at: datetime, actor: str = "alice") -> IncidentEvent:
    return IncidentEvent(id_, 1, at, kind, actor, None, {}, None, None)


def day_report(**changes) -> DayReport:
    fields = {
        "window": ReportWindow(SESSION, OPEN - timedelta(hours=20), SESSION.close + timedelta(hours=1)),
        "trading": Trading(
            120,
            70,
            50,
            1234.0,
            5_600_000.0,
            {"strategic-marl": 80, "tactical-marl": 40},
            3,
            -1250.5,
            12_500_000.0,
            "USD",
        ),
        "performance": Performance(
            11.5, 42.0, 87.0, 12400, 0.02, 99.97, [("09:00", 40.0), ("10:00", 55.5), ("11:00", 120.0), ("12:00", 38.0)]
        ),
        "components": [
            Component("strategic-marl", "healthy", 41.0, 52.3),
            Component("execution-engine", "healthy", 33.0, 60.0),
        ],
        "incidents": [],
        "runbooks": [],
        "runs": [],
        "runs_note": "2 runs from Airflow's REST API",
        "security": Security(300, 4, 2, 3, {"bad_password": 3, "mfa_failed": 1}, [("user07", 3), ("user11", 1)]),
        "p95_target_ms": 100.0,
        "error_rate_target_pct": 0.1,
        "cpu_limit_pct": 80.0,
        "memory_limit_pct": 85.0,
        "failed_logins_per_minute_limit": 20.0,
    }
    fields.update(changes)
    return DayReport(**fields)  # type: ignore[arg-type]


def test_time_to_acknowledge_and_resolve_come_from_the_audit_trail():
    inc = incident(1, acknowledged_at=OPEN + timedelta(hours=5))  # the row's field is not what counts
    events = [
        event(1, EventKind.OPENED, OPEN),
        event(2, EventKind.PAGED, OPEN + timedelta(seconds=2)),
        event(3, EventKind.ACKNOWLEDGED, OPEN + timedelta(minutes=7)),
        event(4, EventKind.ACKNOWLEDGED, OPEN + timedelta(minutes=30)),  # a second acknowledgement: not the first
        event(5, EventKind.RESOLVED, OPEN + timedelta(minutes=42)),
    ]
    times = incident_times(inc, events, timedelta(minutes=15), [])
    assert times.time_to_acknowledge == timedelta(minutes=7)
    assert times.time_to_resolve == timedelta(minutes=42)
    assert not times.acknowledged_late


def test_a_resolution_without_acknowledgement_is_the_first_response_and_late_is_against_the_severity():
    events = [event(1, EventKind.OPENED, OPEN), event(2, EventKind.RESOLVED, OPEN + timedelta(minutes=20))]
    times = incident_times(incident(1, "P1"), events, timedelta(minutes=5), [])
    assert times.time_to_acknowledge == times.time_to_resolve == timedelta(minutes=20)
    assert times.acknowledged_late
    still_open = incident_times(incident(2, status="open"), [event(1, EventKind.OPENED, OPEN)], None, [])
    assert still_open.time_to_acknowledge is None and still_open.time_to_resolve is None


def test_mtta_and_mttr_are_means_of_the_incidents_that_have_them():
    assert mean_time([timedelta(minutes=4), None, timedelta(minutes=8)]) == timedelta(minutes=6)
    assert mean_time([None]) is None
    acked = incident_times(
        incident(1),
        [
            event(1, EventKind.ACKNOWLEDGED, OPEN + timedelta(minutes=2)),
            event(2, EventKind.RESOLVED, OPEN + timedelta(minutes=10)),
        ],
        None,
        [],
    )
    open_ = incident_times(incident(2, status="open"), [], None, [])
    day = day_report(incidents=[acked, open_])
    assert (day.mtta, day.mttr) == (timedelta(minutes=2), timedelta(minutes=10))


def test_runbook_events_are_deadline_misses_and_failed_runs():
    found = runbook_events(
        [
            incident(
                3,
                source=IncidentSource.TASK_FAILURE,
                dag_id="post_market_shutdown",
                run_id="r2",
                task_id="close_positions",
                opened=OPEN + timedelta(hours=4),
            ),
            incident(
                2,
                source=IncidentSource.DEADLINE,
                dag_id="pre_market_startup",
                run_id="r1",
                details={"tier": "at_open"},
                opened=OPEN - timedelta(hours=1),
            ),
            incident(4, dag_id="daily_health_check"),  # a check's incident: not a runbook's failure
        ]
    )
    assert [(e.dag_id, e.what) for e in found] == [
        ("pre_market_startup", "deadline 'at_open' missed"),
        ("post_market_shutdown", "failed at close_positions"),
    ]


def test_a_quiet_day_recommends_nothing():
    [only] = recommendations(day_report())
    assert only.level == "watch" and "Nothing needs action" in only.text


def test_recommendations_follow_the_numbers():
    late = incident_times(
        incident(9, "P1"), [event(1, EventKind.ACKNOWLEDGED, OPEN + timedelta(minutes=12))], timedelta(minutes=5), []
    )
    day = day_report(
        performance=Performance(200, 640.0, 1900, 3100, 2.4, 99.1, []),
        components=[Component("execution-engine", "healthy", 91.0, 88.0)],
        incidents=[late],
        security=Security(100, 60, 25, 9, {"bad_password": 60}, [("user07", 60)]),
    )
    texts = " | ".join(r.text for r in recommendations(day))
    for expected in (
        "p95 was 640 ms, over the 100 ms target",
        "Error rate 2.4 %",
        "Availability 99.1 %",
        "execution-engine CPU at 91 %",
        "execution-engine memory at 88 %",
        "#9 (P1)",
        "Failed logins peaked at 25 a minute (rule: 20)",
    ):
        assert expected in texts
    assert all(r.level == "action" for r in recommendations(day))


def test_charts_are_well_formed_accessible_svg_and_escape_their_text():
    bars = bar_chart(
        "CPU <by> component", "desc & more", [Bar("a<b>", 40), Bar("c", 95, "bad")], unit=" %", target=80, scale=100
    )
    line = line_chart("Latency", "p95", [("09:00", 40.0), ("10:00", 130.0)], unit=" ms", target=100)
    empty = line_chart("Latency", "no samples", [])
    for svg in (bars, line, empty, bar_chart("None", "none", [])):
        root = ET.fromstring(svg)
        assert root.tag == f"{SVG}svg" and root.get("role") == "img"
        assert root.find(f"{SVG}title") is not None and root.find(f"{SVG}desc") is not None
    assert ET.fromstring(bars).find(f"{SVG}title").text == "CPU <by> component"
    assert len(ET.fromstring(bars).findall(f"{SVG}rect")) == 2
    assert len(ET.fromstring(line).findall(f"{SVG}circle")) == 2


def test_the_page_is_self_contained_under_300_kb_with_every_chart_and_section(config):
    trail = [event(1, EventKind.OPENED, OPEN), event(2, EventKind.ACKNOWLEDGED, OPEN + timedelta(minutes=3))]
    from tradeops.incidents.timeline import timeline

    inc = incident(5, "P1", title="<script>alert(1)</script>", status="acknowledged")
    day = day_report(incidents=[incident_times(inc, trail, timedelta(minutes=5), timeline(inc, trail))])
    recs = recommendations(day)
    html = render_report(day, recs, config, run_id="scheduled__x", generated_at=OPEN, tz="America/New_York")
    assert len(html.encode()) < 300_000
    assert html.count("<svg") == len(report_charts(day)) == 4
    for section in ("recommendations", "trading", "performance", "resources", "runbooks", "incidents", "security"):
        assert f'<section id="{section}">' in html
    assert "<script" not in html and "&lt;script&gt;alert(1)" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html
    assert "MTTA" in html and "3m 00s" in html and "Fri 27 Nov 09:30 EST" in html


def test_the_slack_summary_names_the_day_its_numbers_and_the_file(tmp_path):
    day = day_report()
    text = slack_summary(day, recommendations(day), tmp_path / "2026-11-27.html", "http://airflow/run")
    assert "2026-11-27" in text and "p95 42 ms (target 100)" in text and "Nothing needs action." in text
    assert f"<{(tmp_path / '2026-11-27.html').as_uri()}|2026-11-27.html>" in text


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (None, "—"),
        (timedelta(seconds=45), "45s"),
        (timedelta(minutes=12, seconds=5), "12m 05s"),
        (timedelta(hours=3, minutes=5), "3h 05m"),
    ],
)
def test_span(value, words):
    assert span(value) == words


def test_the_window_runs_from_the_previous_close_to_the_run():
    table = sessions_for("XNYS")
    run_after = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)  # Monday, close + 60m
    window = report_window(table, run_after)
    assert window.session.day == date(2026, 11, 30)
    assert window.start == datetime(2026, 11, 27, 18, 0, tzinfo=UTC)  # Friday's early close (after Thanksgiving)
    assert window.end == run_after
    saturday = report_window(table, datetime(2026, 11, 28, 15, 0, tzinfo=UTC))
    assert saturday.session.day == date(2026, 11, 27)


def test_runs_from_the_api_get_their_durations_and_missed_deadlines():
    raw = [
        {"dag_id": "pre_market_startup", "dag_run_id": "r1", "run_type": "scheduled", "state": "success",
         "start_date": "2026-11-27T13:30:02+00:00", "end_date": "2026-11-27T13:41:07+00:00", "duration": None},
        {"dag_id": "post_market_shutdown", "dag_run_id": "r2", "run_type": "scheduled", "state": "failed",
         "start_date": "2026-11-27T18:30:00+00:00", "end_date": "2026-11-27T18:32:00+00:00", "duration": 120.4},
        {"dag_id": "daily_ops_report", "dag_run_id": "r3", "run_type": "manual", "state": "running",
         "start_date": None, "end_date": None},
    ]  # fmt: skip
    events = runbook_events([incident(7, source=IncidentSource.DEADLINE, dag_id="pre_market_startup", run_id="r1",
                                      details={"tier": "warn"})])  # fmt: skip
    runs = runbook_runs(raw, events)
    assert [(r.dag_id, r.duration, r.deadlines_missed) for r in runs] == [
        ("pre_market_startup", timedelta(minutes=11, seconds=5), ["warn"]),
        ("post_market_shutdown", timedelta(seconds=120), []),
        ("daily_ops_report", None, []),
    ]
    day = day_report(runs=runs)
    assert any("Runs failed: post_market_shutdown" in r.text for r in recommendations(day))


def test_the_page_lists_the_runs_or_says_why_it_cannot(config):
    runs = runbook_runs(
        [{"dag_id": "pre_market_startup", "dag_run_id": "r1", "run_type": "scheduled", "state": "success",
          "start_date": "2026-11-27T13:30:02+00:00", "end_date": "2026-11-27T13:41:07+00:00"}], [],
    )  # fmt: skip
    html = render_report(day_report(runs=runs), [], config, run_id="r", generated_at=OPEN, tz="America/New_York")
    assert '<table id="runs">' in html and "11m 05s" in html and "1 runs · 0 failed" in html
    missing = day_report(runs=None, runs_note="no Airflow API connection (tradeops_airflow_api)")
    html = render_report(missing, [], config, run_id="r", generated_at=OPEN, tz="America/New_York")
    assert '<table id="runs">' not in html and "no Airflow API connection" in html
