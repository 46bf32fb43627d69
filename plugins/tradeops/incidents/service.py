"""The incident operations every entry point goes through: deadline callbacks, task-failure callbacks, check
reports, the Slack buttons, the UI's action DAG. Each writes PostgreSQL first (the truth), then lets the engine
page and deliver."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from tradeops.config import TradeOpsConfig, load_config
from tradeops.incidents import store
from tradeops.incidents.engine import Engine

log = logging.getLogger("airflow.task.tradeops.incidents")
_migrated: set[str] = set()


def state_dsn(config: TradeOpsConfig) -> str:
    return store.connection_dsn(config.connections.state_db)


def check_key(dag_id: str, check: str) -> str:
    """The dedup key of a check's incident: one per check, across runs."""
    return f"check:{dag_id}:{check}"


class Incidents:
    def __init__(self, config: TradeOpsConfig | None = None, dsn: str | None = None):
        self.config = config or load_config()
        self.dsn = dsn or state_dsn(self.config)
        if self.dsn not in _migrated:
            applied = store.migrate(self.dsn)
            if applied:
                log.info("Applied TradeOps migrations: %s", applied)
            _migrated.add(self.dsn)
        self.engine = Engine(self.config, self.dsn)

    def open(self, *, dedup_key: str, source: str, severity: str, title: str, summary: str = "",
             dag_id: str | None = None, run_id: str | None = None, task_id: str | None = None,
             details: dict | None = None, actor: str = "tradeops", deliver: bool = True) -> store.Opened:
        """Open (or add an occurrence to) the incident for ``dedup_key``; a new one pages level 1 at once."""
        with store.connect(self.dsn) as conn:
            opened = store.open_incident(conn, dedup_key=dedup_key, source=source, severity=severity, title=title,
                                         summary=summary, dag_id=dag_id, run_id=run_id, task_id=task_id,
                                         details=details, actor=actor)
            if opened.created:
                with conn.transaction():
                    self.engine.process(conn, store.get(conn, opened.incident["id"], lock=True), datetime.now(UTC))
        log.info("Incident #%s %s (%s): %s", opened.incident["id"], "opened" if opened.created else "updated",
                 dedup_key, title)
        if deliver:
            self.engine.deliver()
        return opened

    def acknowledge(self, incident_id: int, actor: str, note: str = "") -> dict:
        return self._change(store.acknowledge, "acknowledged", incident_id, actor, note)

    def resolve(self, incident_id: int, actor: str, note: str = "") -> dict:
        return self._change(store.resolve, "resolved", incident_id, actor, note)

    def _change(self, operation, kind: str, incident_id: int, actor: str, note: str) -> dict:
        with store.connect(self.dsn) as conn:
            row = operation(conn, incident_id, actor, note)
            with conn.transaction():
                self.engine.after_change(conn, row, actor, kind)
        self.engine.deliver()
        return row

    def silence(self, matcher: str, author: str, reason: str, duration: timedelta) -> dict:
        with store.connect(self.dsn) as conn:
            return store.silence(conn, matcher, author, reason, duration)

    # --- the sources ------------------------------------------------------------------------------------------

    def deadline_missed(self, dag_run: dict, deadline: dict, *, dag_id: str, tier: str,
                        severity: str) -> store.Opened | None:
        """A run missed a deadline tier. A run that already failed (Airflow fires its deadlines anyway) is handled by
        ``escalation.failed_run_deadline_policy``: merged into the failure's incident, suppressed, or separate."""
        run_id = dag_run.get("dag_run_id") or dag_run.get("run_id")
        due = deadline.get("deadline_time")
        summary = f"Run `{run_id}` was still `{dag_run.get('state')}` at its '{tier}' deadline ({due})."
        details = {"tier": tier, "deadline_time": str(due), "run_state": dag_run.get("state")}
        if dag_run.get("state") == "failed":
            policy = self.config.escalation.failed_run_deadline_policy
            if policy == "suppress":
                log.info("Deadline '%s' of failed run %s/%s suppressed by policy", tier, dag_id, run_id)
                return None
            if policy == "merge":
                return self.open(dedup_key=f"failure:{dag_id}:{run_id}", source="deadline", severity=severity,
                                 title=f"{dag_id} failed (and missed its '{tier}' deadline)", summary=summary,
                                 dag_id=dag_id, run_id=run_id, details=details)
        return self.open(dedup_key=f"deadline:{dag_id}:{run_id}:{tier}", source="deadline", severity=severity,
                         title=f"{dag_id} missed its '{tier}' deadline", summary=summary, dag_id=dag_id,
                         run_id=run_id, details=details)

    def task_failed(self, *, dag_id: str, run_id: str, task_id: str, severity: str, error: str) -> store.Opened:
        return self.open(dedup_key=f"failure:{dag_id}:{run_id}", source="task_failure", severity=severity,
                         title=f"{dag_id} failed at {task_id}", summary=f"`{task_id}` failed: {error}"[:2000],
                         dag_id=dag_id, run_id=run_id, task_id=task_id, details={"task_id": task_id})

    def check_failed(self, *, dag_id: str, run_id: str, check: str, title: str, summary: str,
                     severity: str) -> store.Opened:
        """One incident per failing check, kept (and counted) across runs until someone resolves it."""
        return self.open(dedup_key=check_key(dag_id, check), source="check", severity=severity,
                         title=f"{title} check failing", summary=summary, dag_id=dag_id, run_id=run_id,
                         task_id=check, details={"check": check})
