"""``make demo``: trigger every DAG on the real stack, wait, and summarise what happened.

Add each new DAG to :data:`DEMO_PLAN` (a test fails when a DAG in ``dags/`` is missing from it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from devstack.stack import LocalStack


@dataclass(frozen=True)
class DemoRun:
    dag_id: str
    conf: dict = field(default_factory=dict)
    expect: str = "success"


DEMO_PLAN: list[DemoRun] = [
    DemoRun("daily_health_check"),
]

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

    @property
    def as_expected(self) -> bool:
        return self.state == self.expected


def run_plan(stack: LocalStack, plan: list[DemoRun] = DEMO_PLAN) -> list[RunOutcome]:
    client = stack.client
    client.wait_for_dags({run.dag_id for run in plan})
    triggered = []
    for run in plan:
        client.set_paused(run.dag_id, False)
        triggered.append((run, client.trigger(run.dag_id, run.conf)))
        stack.log(f"  triggered {run.dag_id}")
    outcomes = []
    deadline = time.monotonic() + RUN_TIMEOUT_S
    for run, run_id in triggered:
        final = client.wait_for_run(run.dag_id, run_id, timeout=max(deadline - time.monotonic(), 1))
        tasks: dict[str, int] = {}
        for ti in client.task_instances(run.dag_id, run_id):
            tasks[ti["state"] or "none"] = tasks.get(ti["state"] or "none", 0) + 1
        outcomes.append(RunOutcome(run.dag_id, run_id, final["state"], run.expect, _duration(final), tasks))
    return outcomes


def _duration(run: dict) -> float | None:
    if run.get("duration") is not None:
        return float(run["duration"])
    if run.get("start_date") and run.get("end_date"):
        start = datetime.fromisoformat(run["start_date"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(run["end_date"].replace("Z", "+00:00"))
        return (end - start).total_seconds()
    return None


def _gb(value: int) -> str:
    return f"{value / 1024**3:.2f} GB"


def summary(stack: LocalStack, outcomes: list[RunOutcome]) -> str:
    lines = [f"TradeOps demo summary ({datetime.now(UTC):%Y-%m-%d %H:%M UTC})", "", "DAG runs:"]
    for o in outcomes:
        duration = f"{o.duration_s:.1f}s" if o.duration_s is not None else "-"
        tasks = ", ".join(f"{n} {state}" for state, n in sorted(o.tasks.items()))
        mark = "ok" if o.as_expected else f"UNEXPECTED (wanted {o.expected})"
        lines.append(f"  {o.dag_id:<28} {o.state:<8} {duration:>8}  [{tasks}]  {mark}")
        lines.append(f"  {'':<28} run {o.run_id}")
    lines += ["", "Schedules (exchange calendar, next run in New York time):"]
    for dag_id in sorted({o.dag_id for o in outcomes}):
        dag = stack.client.dag(dag_id)
        next_run = dag.get("next_dagrun_run_after")
        when = (datetime.fromisoformat(next_run.replace("Z", "+00:00")).astimezone(NEW_YORK)
                .strftime("%a %Y-%m-%d %H:%M %Z") if next_run else "-")
        lines.append(f"  {dag_id:<28} {dag.get('timetable_summary') or '-':<36} next: {when}")
    messages = stack.sandbox.slack_messages()
    lines += ["", f"Slack messages received by the sandbox ({len(messages)}):"]
    for message in messages:
        thread = " (thread reply)" if message.get("thread_ts") else ""
        lines.append(f"  {message['channel_name']:<18} {message['text'][:110]}{thread}")
    reports = sorted(p for p in stack.airflow.reports_dir.rglob("*") if p.is_file()) if stack.airflow else []
    lines += ["", f"Reports written ({len(reports)}):"]
    lines += [f"  {_relative(p)}" for p in reports]
    rss, pss, count = stack.memory.peak_rss, stack.memory.peak_pss, stack.memory.peak_processes
    lines += ["", f"Stack memory (Airflow + sandbox, {count} processes): peak RSS sum {_gb(rss)}, "
                  f"peak PSS {_gb(pss)}"]
    return "\n".join(lines)


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
