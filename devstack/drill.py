"""The escalation drill on a running stack: a DAG misses its deadline, the on-call chain is paged level by level,
someone clicks *Acknowledge* in Slack, and the incident is resolved from the Airflow UI's form. Used by
``make demo`` and by the end-to-end tests, which time each step."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from devstack.client import parse
from devstack.stack import LocalStack
from tradeops.incidents import heartbeats, store
from tradeops.incidents.heartbeats import EngineHeartbeat

ENGINE_DAG, DRILL_DAG = "incident_escalation_engine", "escalation_drill"
# The incident forms, one DAG per action (the drill resolves with one; the demo's forms tour uses them all).
ACTION_DAGS = ("incident_open", "incident_acknowledge", "incident_silence", "incident_end_silence", "incident_resolve")
INCIDENT_NUMBER = re.compile(r"#(\d+) ")


def posted_at(message: dict) -> datetime:
    return datetime.fromtimestamp(float(message["ts"]), UTC)


@dataclass
class Page:
    incident_id: int
    message: dict
    deadline: datetime  # when the drill run's deadline was due

    @property
    def latency_s(self) -> float:
        return (posted_at(self.message) - self.deadline).total_seconds()


class Drill:
    def __init__(self, stack: LocalStack):
        self.stack = stack
        self.client = stack.client
        self.slack = stack.sandbox

    def wait_for_engine(self, timeout: float = 120) -> str:
        """Wait until the escalation engine runs, as it must from the first start with nobody unpausing it: its DAG
        unpaused (at creation), a window deferred in the triggerer, and that window's heartbeat written. Returns the
        run id of the deferred window."""
        self.client.wait_for_dags({ENGINE_DAG, DRILL_DAG, *ACTION_DAGS})
        if self.client.dag(ENGINE_DAG)["is_paused"]:
            raise RuntimeError(f"{ENGINE_DAG} is paused: it must be unpaused from its creation")

        def deferred_run():
            return next(
                (
                    run["dag_run_id"]
                    for run in self.client.dag_runs(ENGINE_DAG)
                    if self.client.task_instance(ENGINE_DAG, run["dag_run_id"], "escalate")["state"] == "deferred"
                ),
                None,
            )

        run_id = self.wait_until("the escalation engine deferred", deferred_run, timeout)
        self.wait_until("the escalation engine's heartbeat", self.engine_heartbeat, timeout)
        return run_id

    def engine_heartbeat(self) -> EngineHeartbeat | None:
        """The engine's newest heartbeat in the sandbox's state database (None: it never ran)."""
        with store.connect(self.stack.settings["postgres"]["state_dsn"]) as conn:
            return heartbeats.liveness(conn).newest

    def trigger(self, dag_id: str = DRILL_DAG, timeout: float = 60) -> tuple[str, datetime]:
        """Start a run of a DAG with a deadline (the drill); returns it and when its deadline is due."""
        self.client.set_paused(dag_id, False)
        run_id = self.client.trigger(dag_id)
        found = self.wait_until(f"deadline of {run_id}", lambda: self.client.deadlines(dag_id, run_id), timeout)
        return run_id, parse(found[0]["deadline_time"])

    def wait_until(self, what: str, find, timeout: float):
        """Poll ``find`` until it returns something, or raise ``TimeoutError``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := find():
                return found
            time.sleep(0.1)
        raise TimeoutError(f"{what}: nothing after {timeout:.0f}s")

    def wait_for_page(self, run_id: str, deadline: datetime, timeout: float = 60, dag_id: str = DRILL_DAG) -> Page:
        """The level-1 page (the incident's first message) for this run."""

        def find():
            for message in self.slack.slack_messages("#trading-alerts"):
                if not message["thread_ts"] and dag_id in message["text"] and run_id in str(message["blocks"]):
                    return Page(int(INCIDENT_NUMBER.search(message["text"]).group(1)), message, deadline)
            return None

        return self.wait_until(f"level-1 page for {run_id}", find, timeout)

    def messages(self, incident_id: int, channel: str | None = None) -> list[dict]:
        return [m for m in self.slack.slack_messages(channel) if f"#{incident_id} " in m["text"]]

    def wait_for_level(self, incident_id: int, level: int, channel: str, timeout: float = 60) -> dict:
        def find():
            return next(
                (
                    m
                    for m in self.messages(incident_id, channel)
                    if m["text"].startswith(f":arrow_double_up: Escalated to L{level} ")
                ),
                None,
            )

        return self.wait_until(f"L{level} page of #{incident_id}", find, timeout)

    def acknowledge_in_slack(self, page: Page, user: str = "oncall-primary", sign: bool = True) -> dict:
        return self.slack.click(page.message, "incident_ack", user=user, sign=sign)

    def run_form(self, dag_id: str, conf: dict, timeout: float = 120) -> tuple[dict, dict | None]:
        """Trigger one of the incident forms as someone in the Airflow UI would; the finished run and its task's
        result (the run records who triggered it: the authenticated user)."""
        self.client.set_paused(dag_id, False)
        run_id = self.client.trigger(dag_id, conf)
        run = self.client.wait_for_run(dag_id, run_id, timeout=timeout)
        [task] = self.client.task_instances(dag_id, run_id)
        result = self.client.xcom(dag_id, run_id, task["task_id"]) if run["state"] == "success" else None
        return run, result

    def resolve_in_airflow(self, incident_id: int, note: str, timeout: float = 120) -> dict:
        """Resolve through the ``incident_resolve`` form; the finished run."""
        return self.run_form("incident_resolve", {"incident_id": incident_id, "note": note}, timeout)[0]

    def incident(self, incident_id: int) -> tuple[dict, list[dict]]:
        return self.client.incident(incident_id)
