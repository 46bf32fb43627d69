"""Triggers of the incident machinery, so that waiting never holds a worker.

- ``EscalationEngineTrigger``: the escalation engine for one window of time. It acts on what is due, delivers the
  outbox, writes the reports of resolved incidents still due, starts the runbooks P1 incidents are owed (through
  the api-server's REST API), records a heartbeat, then sleeps until the next action is due or PostgreSQL notifies
  a change (``LISTEN tradeops_incidents``), whichever comes first, and never longer than 30 s; the state is in
  PostgreSQL, so a restarted triggerer simply picks up where it was.
- ``TaskDeadlineTrigger``: a task-level deadline. It follows the watched tasks' states until they succeed (no
  incident) or the deadline passes with one of them not done (an incident opens).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from tradeops.exceptions import IncidentError

MAX_SLEEP_S = 30.0  # also the longest gap between two heartbeats of a healthy engine


class EscalationEngineTrigger(BaseTrigger):
    """The escalation engine until ``until``: act on what is due, deliver the outbox, write the incident reports still
    due, start the runbooks still owed (:mod:`tradeops.incident_response.engine_starts`), record a heartbeat, sleep
    until the next action or a change (``LISTEN``), at most 30 s; ends with how many incidents it acted on and how
    many messages it delivered.

    Its side effects (pages, Slack messages, report files, heartbeats) are deliberate: this trigger *is* the engine,
    not a wait. Each is idempotent (incidents, messages and due reports are taken ``FOR UPDATE SKIP LOCKED``; a
    heartbeat is an upsert of the window's row in ``tradeops.engine_heartbeats``), so a window resumed by another
    triggerer repeats nothing. The heartbeat is what the health check's ``escalation_engine`` check reads.

    :param until: when the window ends (ISO 8601, with a time zone); it also names the window's heartbeat row.
    """

    def __init__(self, until: str):
        super().__init__()
        self.until = until
        self._heartbeat_failing = False

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return "tradeops.incidents.triggers.EscalationEngineTrigger", {"until": self.until}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import psycopg

        from tradeops.config import load_config
        from tradeops.connections import apostgres_dsn
        from tradeops.incident_response.engine_starts import start_due
        from tradeops.incidents import store
        from tradeops.incidents.service import IncidentService

        until = datetime.fromisoformat(self.until)
        config = load_config()
        dsn = await apostgres_dsn(config.connections.state_db)
        incidents = IncidentService(config, dsn)
        acted = delivered = 0
        await asyncio.to_thread(self._beat, dsn, until, prune=True)
        async with store.listening(dsn) as listener:
            while (now := datetime.now(UTC)) < until:
                try:
                    acted += await asyncio.to_thread(incidents.engine.process_due)
                    delivered += await asyncio.to_thread(incidents.outbox.deliver)
                    await asyncio.to_thread(incidents.write_due_reports)
                    await asyncio.to_thread(start_due, incidents)
                    await asyncio.to_thread(self._beat, dsn, until)
                    wake = await asyncio.to_thread(incidents.next_wakeup)
                except (psycopg.OperationalError, OSError) as err:
                    self.log.warning("Escalation engine: %s; retrying in 5 s", err)
                    wake = None
                    await asyncio.sleep(5)
                now = datetime.now(UTC)
                sleep = min(MAX_SLEEP_S, (until - now).total_seconds())
                if wake is not None:
                    sleep = min(sleep, max((wake - now).total_seconds(), 0.0))
                if sleep <= 0:
                    continue
                async for _ in listener.notifies(timeout=sleep, stop_after=1):
                    pass  # something changed: go round at once
        yield TaskSuccessEvent(
            xcoms={"return_value": {"acted": acted, "delivered": delivered, "window_end": self.until}}
        )

    def _beat(self, dsn: str, until: datetime, *, prune: bool = False) -> None:
        """Record that this window is awake (and, when it starts, forget week-old windows). A heartbeat that cannot
        be written (the table's migration not applied) must not stop the escalation: it is logged once, and the
        health check, which finds no heartbeat, says what is wrong."""
        from tradeops.incidents import heartbeats, store

        run_id = getattr(self.task_instance, "run_id", None)
        try:
            with store.connect(dsn) as conn:
                if prune:
                    heartbeats.prune(conn)
                heartbeats.beat(conn, until, f"{socket.gethostname()}:{os.getpid()}", run_id)
        except IncidentError as err:
            if not self._heartbeat_failing:
                self.log.warning("Escalation engine: no heartbeat recorded (escalating all the same): %s", err)
            self._heartbeat_failing = True
        else:
            self._heartbeat_failing = False


class TaskDeadlineTrigger(BaseTrigger):
    """Follow tasks of one run until they all succeed (or one fails), or the deadline passes with one of them not
    done: then open an incident (``task_deadline:<dag>:<run>:<name>``) naming the late tasks.

    :param dag_id: the DAG of the run.
    :param run_id: the run whose tasks are watched.
    :param task_ids: the tasks that must have succeeded (or been skipped) by the deadline.
    :param deadline: the deadline (ISO 8601, with a time zone).
    :param name: the deadline's name, in the incident's title and dedup key.
    :param severity: the severity of the incident a missed deadline opens.
    :param poll_s: seconds between two reads of the tasks' states.
    """

    def __init__(
        self,
        dag_id: str,
        run_id: str,
        task_ids: list[str],
        deadline: str,
        name: str,
        severity: str,
        poll_s: float = 5.0,
    ):
        super().__init__()
        self.dag_id = dag_id
        self.run_id = run_id
        self.task_ids = list(task_ids)
        self.deadline = deadline
        self.name = name
        self.severity = severity
        self.poll_s = poll_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return "tradeops.incidents.triggers.TaskDeadlineTrigger", {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "task_ids": self.task_ids,
            "deadline": self.deadline,
            "name": self.name,
            "severity": self.severity,
            "poll_s": self.poll_s,
        }

    async def _states(self) -> dict[str, str | None]:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
        from asgiref.sync import sync_to_async

        by_run = await sync_to_async(RuntimeTaskInstance.get_task_states)(
            dag_id=self.dag_id, task_ids=self.task_ids, run_ids=[self.run_id]
        )
        return dict(by_run.get(self.run_id, {}))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = datetime.fromisoformat(self.deadline)
        while True:
            states = await self._states()
            finished = {t: s for t, s in states.items() if s in ("success", "skipped")}
            failed = {t: s for t, s in states.items() if s in ("failed", "upstream_failed")}
            if len(finished) == len(self.task_ids):
                yield TaskSuccessEvent(xcoms={"return_value": {"met": True, "states": states}})
                return
            if failed:  # the failure is its own incident (critical tasks), not a lateness one
                yield TaskSuccessEvent(xcoms={"return_value": {"met": False, "failed": failed, "states": states}})
                return
            remaining = (deadline - datetime.now(UTC)).total_seconds()
            if remaining <= 0:
                break
            await asyncio.sleep(min(self.poll_s, remaining))
        late = sorted(t for t in self.task_ids if states.get(t) not in ("success", "skipped"))
        opened = await self._open(late, states)
        yield TaskSuccessEvent(
            xcoms={"return_value": {"met": False, "late": late, "states": states, "incident_id": opened}}
        )

    async def _open(self, late: list[str], states: dict[str, str | None]) -> int:
        from tradeops.config import load_config
        from tradeops.connections import apostgres_dsn
        from tradeops.incidents.models import IncidentSource, NewIncident, Opened
        from tradeops.incidents.service import IncidentService

        config = load_config()
        dsn = await apostgres_dsn(config.connections.state_db)
        summary = f"By {self.deadline}, {len(late)} task(s) of run `{self.run_id}` had not succeeded: " + ", ".join(
            f"`{t}` ({states.get(t) or 'not started'})" for t in late
        )

        def open_it() -> Opened:
            return IncidentService(config, dsn).open(
                NewIncident(
                    dedup_key=f"task_deadline:{self.dag_id}:{self.run_id}:{self.name}",
                    source=IncidentSource.DEADLINE,
                    severity=self.severity,
                    title=f"{self.dag_id}: '{self.name}' not done in time",
                    summary=summary,
                    dag_id=self.dag_id,
                    run_id=self.run_id,
                    task_id=late[0],
                    details={"tasks": late, "deadline": self.deadline, "states": states},
                )
            )

        return (await asyncio.to_thread(open_it)).incident.id
