"""``make demo``: trigger every DAG on the real stack, run the escalation drill, wait, and summarise what happened.

Add each new DAG to :data:`DEMO_PLAN` (a test fails when a DAG in ``dags/`` is neither there nor in the drill).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from devstack.client import parse
from devstack.drill import ACTION_DAGS, DRILL_DAG, ENGINE_DAG, Drill, posted_at
from devstack.stack import LocalStack


@dataclass(frozen=True)
class DemoRun:
    dag_id: str
    conf: dict = field(default_factory=dict)
    expect: str = "success"
    after_previous: bool = False  # wait for the runs triggered before this one to finish first


DEMO_PLAN: list[DemoRun] = [
    DemoRun("daily_health_check"),
    DemoRun("daily_db_maintenance"),
    # The sandbox plants a problem for each security check (README, "The sandbox"): every check fails, and the report
    # lists each finding as new, with its incident.
    DemoRun("daily_security_check", expect="failed"),
    # A dry run (picking removals waits for a reviewer): the matrix, the planted inactive user, stale binding and new
    # binding, the plan in the report, and nothing removed.
    DemoRun("monthly_access_review", {"dry_run": True}),
    # Outside its Sunday window: forced. The sandbox seeds TLS certificates that expire in 5 days and 3 days ago, so
    # the certificate check fails (and opens an incident) while every other step succeeds.
    DemoRun("weekly_maintenance", {"break_glass_reason": "make demo: run the Sunday window now"}, expect="failed"),
    # Restores the backup the weekly window just took into a new database and compares row counts.
    DemoRun(
        "db_restore",
        {"target_database": f"restored_grandmodel_{datetime.now(UTC):%Y%m%d_%H%M%S}", "dry_run": False},
        after_previous=True,
    ),
    DemoRun("pre_market_startup"),
    DemoRun("market_hours_watch", {"minutes": 1}),  # drill mode: one minute of the watch, whatever the hour
    DemoRun("post_market_shutdown", after_previous=True),  # closes the day once the startup and watch have ended
    DemoRun("daily_ops_report", after_previous=True),  # the day so far, once the runs before it have ended
    # A dry run (an approval would wait for a person): the plan, object by object, and nothing changed.
    DemoRun(
        "blue_green_deploy",
        {
            "version": "2.3.0",
            "services": ["auth-service"],
            "reason": "make demo: plan a release",
            "break_glass": True,
            "break_glass_reason": "make demo: whatever the market hours",
        },
    ),
    # A dry run to a version (a fresh sandbox has no previous revision): the plan and nothing changed.
    DemoRun(
        "emergency_rollback",
        {"target": "2.3.0", "reason": "make demo: plan a rollback", "confirm": True, "dry_run": True},
    ),
]

RESPONSE_DAG = "incident_response"  # a dry run on the forms tour's incident (it needs one that exists and is open)
DRILL_DAGS = (ENGINE_DAG, DRILL_DAG, *ACTION_DAGS, RESPONSE_DAG)  # run by the drill and the forms tour, after the plan
RUN_TIMEOUT_S = 600
NEW_YORK = ZoneInfo("America/New_York")


@dataclass
class RunOutcome:
    dag_id: str
    run_id: str
    state: str
    expected: str
    duration_s: float | None
    tasks: dict[str, int]
    hosts: dict[str, int] = field(default_factory=dict)  # task instances by the hostname that ran them

    @property
    def as_expected(self) -> bool:
        return self.state == self.expected


def run_plan(stack: LocalStack, plan: list[DemoRun] = DEMO_PLAN) -> list[RunOutcome]:
    client = stack.client
    client.wait_for_dags({run.dag_id for run in plan})
    # The escalation engine runs by itself from the first start (nobody unpauses it): the health check checks it.
    Drill(stack).wait_for_engine()
    triggered = []
    for run in plan:
        if run.after_previous:
            for earlier, run_id in triggered:
                client.wait_for_run(earlier.dag_id, run_id, timeout=RUN_TIMEOUT_S)
        client.set_paused(run.dag_id, False)
        triggered.append((run, client.trigger(run.dag_id, run.conf)))
        stack.log(f"  triggered {run.dag_id}")
    outcomes = []
    deadline = time.monotonic() + RUN_TIMEOUT_S
    for run, run_id in triggered:
        final = client.wait_for_run(run.dag_id, run_id, timeout=max(deadline - time.monotonic(), 1))
        tasks: dict[str, int] = {}
        hosts: dict[str, int] = {}
        for ti in client.task_instances(run.dag_id, run_id):
            tasks[ti["state"] or "none"] = tasks.get(ti["state"] or "none", 0) + 1
            if ti.get("hostname"):
                hosts[ti["hostname"]] = hosts.get(ti["hostname"], 0) + 1
        outcomes.append(RunOutcome(run.dag_id, run_id, final["state"], run.expect, _duration(final), tasks, hosts))
    return outcomes


@dataclass
class DrillOutcome:
    incident: dict
    timeline: list[dict]
    lines: list[str]
    forms_ok: bool = True  # every step of the forms tour ran to its expected end

    @property
    def as_expected(self) -> bool:
        kinds = [e["kind"] for e in self.timeline]
        return (
            self.forms_ok
            and self.incident["status"] == "resolved"
            and "escalated" in kinds
            and "acknowledged" in kinds
            and self.incident["acknowledged_by"].endswith("(Slack)")
        )


def run_drill(stack: LocalStack) -> DrillOutcome:
    """A deadline miss escalating to L2, acknowledged from Slack, resolved from the Airflow UI's form."""
    drill = Drill(stack)
    drill.wait_for_engine()
    stack.log(f"  escalation engine deferred in the triggerer; triggering {DRILL_DAG}")
    run_id, due = drill.trigger()
    page = drill.wait_for_page(run_id, due, timeout=120)
    lines = [
        f"  deadline of {run_id} due {due:%H:%M:%S}; L1 paged {page.latency_s:.1f}s later "
        f"(incident #{page.incident_id}, {page.message['channel_name']})"
    ]
    l2 = drill.wait_for_level(page.incident_id, 2, "#ops-management", timeout=120)
    lines.append(
        f"  L2 paged {(posted_at(l2) - posted_at(page.message)).total_seconds():.1f}s after L1: {l2['text'][:90]}"
    )
    clicked = drill.acknowledge_in_slack(page, user="oncall-primary")
    lines.append(f"  'Acknowledge' clicked in Slack by @oncall-primary: HTTP {clicked['status']}")
    resolved = drill.resolve_in_airflow(page.incident_id, "drill complete")
    lines.append(f"  resolved from the Airflow form by {resolved['triggering_user_name']} (run {resolved['state']})")
    incident, timeline = drill.incident(page.incident_id)
    opened = parse(timeline[0]["at"])
    lines.append(f"  audit trail of #{page.incident_id} ({incident['status']}):")
    for event in timeline:
        level = f"L{event['level']}" if event["level"] else ""
        where = f" {event['slack_channel']}" if event["slack_channel"] else ""
        lines.append(
            f"    +{(parse(event['at']) - opened).total_seconds():5.1f}s  {event['kind']:<14} {level:<3} "
            f"{event['actor']}{where}"
        )
    forms_ok, tour = forms_tour(drill)
    return DrillOutcome(incident, timeline, lines + tour, forms_ok)


def forms_tour(drill: Drill) -> tuple[bool, list[str]]:
    """Each incident form once, on a P4 opened by hand: open, acknowledge, silence it, end the silence, resolve.
    Every action is recorded as the user who triggered the run."""
    lines = ["  the incident forms, each as the logged-in user:"]
    run, opened = drill.run_form("incident_open", {"title": "make demo: a hand-opened incident", "severity": "P4"})
    if not opened:
        return False, [*lines, f"    incident_open: run {run['state']}"]
    number = opened["incident_id"]
    steps = [
        ("incident_acknowledge", {"incident_id": number, "note": "looking"}),
        ("incident_silence", {"target": f"#{number}", "reason": "make demo: a silence", "minutes": 5}),
        ("incident_end_silence", None),
        ("incident_resolve", {"incident_id": number, "note": "make demo: done"}),
    ]
    lines.append(f"    incident_open: #{number} opened by {run['triggering_user_name']}")
    silence_id = None
    for dag_id, conf in steps:
        if dag_id == "incident_resolve":  # the response runbook needs the incident open
            ok, line = response_dry_run(drill, number)
            lines.append(line)
            if not ok:
                return False, lines
        run, result = drill.run_form(dag_id, conf or {"silence_id": silence_id})
        lines.append(f"    {dag_id}: run {run['state']} by {run['triggering_user_name']}")
        if run["state"] != "success" or result is None:
            return False, lines
        silence_id = result.get("silence_id", silence_id)
    return True, lines


def response_dry_run(drill: Drill, incident_id: int, timeout: float = RUN_TIMEOUT_S) -> tuple[bool, str]:
    """``incident_response`` as a dry run on the tour's open incident: diagnostics, the thread update and the plan,
    nothing changed (the approval and the destructive steps are skipped). Whether it ran as expected, and a line."""
    client = drill.client
    client.wait_for_dags({RESPONSE_DAG})
    client.set_paused(RESPONSE_DAG, False)
    conf = {"incident_id": incident_id, "type": "critical", "dry_run": True, "reason": "make demo: plan a response"}
    run_id = client.trigger(RESPONSE_DAG, conf)
    run = client.wait_for_run(RESPONSE_DAG, run_id, timeout=timeout)
    report = client.xcom(RESPONSE_DAG, run_id, "report") if run["state"] == "success" else None
    outcome = (report or {}).get("outcome", "no report")
    ok = run["state"] == "success" and outcome.startswith("dry run")
    changes = len((report or {}).get("plan", []))
    return ok, f"    {RESPONSE_DAG}: run {run['state']} by {run['triggering_user_name']}: {outcome} ({changes} planned)"


def _duration(run: dict) -> float | None:
    if run.get("duration") is not None:
        return float(run["duration"])
    if run.get("start_date") and run.get("end_date"):
        return (parse(run["end_date"]) - parse(run["start_date"])).total_seconds()
    return None


def _gb(value: int) -> str:
    return f"{value / 1024**3:.2f} GB"


def summary(stack: LocalStack, outcomes: list[RunOutcome], drill: DrillOutcome | None = None) -> str:
    lines = [f"TradeOps demo summary ({datetime.now(UTC):%Y-%m-%d %H:%M UTC})", "", "DAG runs:"]
    for o in outcomes:
        duration = f"{o.duration_s:.1f}s" if o.duration_s is not None else "-"
        tasks = ", ".join(f"{n} {state}" for state, n in sorted(o.tasks.items()))
        mark = "ok" if o.as_expected else f"UNEXPECTED (wanted {o.expected})"
        lines.append(f"  {o.dag_id:<28} {o.state:<8} {duration:>8}  [{tasks}]  {mark}")
        lines.append(f"  {'':<28} run {o.run_id}")
    if stack.celery_workers:
        queues = ", ".join(f"{w.name} ({','.join(w.queues)})" for w in stack.celery_workers)
        lines += ["", f"CeleryExecutor, workers {queues}; task instances by the worker that ran them:"]
        for o in outcomes:
            ran = ", ".join(f"{host.split('.')[0]} {n}" for host, n in sorted(o.hosts.items()))
            lines.append(f"  {o.dag_id:<28} {ran or '-'}")
    lines += ["", "Schedules (exchange calendar, next run in New York time):"]
    for dag_id in sorted({o.dag_id for o in outcomes}):
        dag = stack.client.dag(dag_id)
        next_run = dag.get("next_dagrun_run_after")
        when = parse(next_run).astimezone(NEW_YORK).strftime("%a %Y-%m-%d %H:%M %Z") if next_run else "-"
        lines.append(f"  {dag_id:<28} {dag.get('timetable_summary') or '-':<36} next: {when}")
    if drill:
        mark = "ok" if drill.as_expected else "UNEXPECTED"
        lines += ["", f"Escalation drill (seconds-scale demo policy, {stack.config_path.name}): {mark}", *drill.lines]
    messages = stack.sandbox.slack_messages()
    lines += ["", f"Slack messages received by the sandbox ({len(messages)}):"]
    for message in messages:
        thread = " (thread reply)" if message.get("thread_ts") else ""
        lines.append(f"  {message['channel_name']:<18} {message['text'][:110]}{thread}")
    reports = sorted(p for p in stack.airflow.reports_dir.rglob("*") if p.is_file()) if stack.airflow else []
    lines += ["", f"Reports written ({len(reports)}):"]
    lines += [f"  {_relative(p)}" for p in reports]
    rss, pss, count = stack.memory.peak_rss, stack.memory.peak_pss, stack.memory.peak_processes
    lines += ["", f"Stack memory (Airflow + sandbox, {count} processes): peak RSS sum {_gb(rss)}, peak PSS {_gb(pss)}"]
    return "\n".join(lines)


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
