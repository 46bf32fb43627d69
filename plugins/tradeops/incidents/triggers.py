"""Triggers of the incident machinery, so that waiting never holds a worker.

- ``EscalationEngineTrigger``: the escalation engine for one window of time. It acts on what is due, delivers the
  outbox, then sleeps until the next action is due or PostgreSQL notifies a change (``LISTEN tradeops_incidents``),
  whichever comes first; the state is in PostgreSQL, so a restarted triggerer simply picks up where it was.
- ``TaskDeadlineTrigger``: a task-level deadline. It follows the watched tasks' states until they succeed (no
  incident) or the deadline passes with one of them not done (an incident opens).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

MAX_SLEEP_S = 30.0


async def _state_dsn(config) -> str:
    from airflow.sdk import BaseHook

    from tradeops.incidents.store import dsn_from_connection

    return dsn_from_connection(await BaseHook.aget_connection(config.connections.state_db))


class EscalationEngineTrigger(BaseTrigger):
    def __init__(self, until: str):
        super().__init__()
        self.until = until

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return "tradeops.incidents.triggers.EscalationEngineTrigger", {"until": self.until}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import psycopg

        from tradeops.config import load_config
        from tradeops.incidents.service import Incidents
        from tradeops.incidents.store import CHANNEL

        until = datetime.fromisoformat(self.until)
        config = load_config()
        dsn = await _state_dsn(config)
        incidents = await asyncio.to_thread(Incidents, config, dsn)
        engine = incidents.engine
        acted = delivered = 0
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as listener:
            await listener.execute(f"LISTEN {CHANNEL}")
            while (now := datetime.now(UTC)) < until:
                try:
                    done, sent = await asyncio.to_thread(engine.tick)
                    acted, delivered = acted + done, delivered + sent
                    wake = await asyncio.to_thread(engine.next_wakeup)
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
        yield TaskSuccessEvent(xcoms={"return_value": {"acted": acted, "delivered": delivered,
                                                       "window_end": self.until}})


class TaskDeadlineTrigger(BaseTrigger):
    def __init__(self, dag_id: str, run_id: str, task_ids: list[str], deadline: str, name: str, severity: str,
                 poll_s: float = 5.0):
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
            "dag_id": self.dag_id, "run_id": self.run_id, "task_ids": self.task_ids, "deadline": self.deadline,
            "name": self.name, "severity": self.severity, "poll_s": self.poll_s}

    async def _states(self) -> dict[str, str | None]:
        from asgiref.sync import sync_to_async

        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        by_run = await sync_to_async(RuntimeTaskInstance.get_task_states)(
            dag_id=self.dag_id, task_ids=self.task_ids, run_ids=[self.run_id])
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
        yield TaskSuccessEvent(xcoms={"return_value": {"met": False, "late": late, "states": states,
                                                       "incident_id": opened}})

    async def _open(self, late: list[str], states: dict) -> int:
        from tradeops.config import load_config
        from tradeops.incidents.service import Incidents

        config = load_config()
        dsn = await _state_dsn(config)
        summary = (f"By {self.deadline}, {len(late)} task(s) of run `{self.run_id}` had not succeeded: "
                   + ", ".join(f"`{t}` ({states.get(t) or 'not started'})" for t in late))

        def open_it():
            return Incidents(config, dsn).open(
                dedup_key=f"task_deadline:{self.dag_id}:{self.run_id}:{self.name}", source="deadline",
                severity=self.severity, title=f"{self.dag_id}: '{self.name}' not done in time", summary=summary,
                dag_id=self.dag_id, run_id=self.run_id, task_id=late[0],
                details={"tasks": late, "deadline": self.deadline, "states": states})

        return (await asyncio.to_thread(open_it)).incident["id"]
