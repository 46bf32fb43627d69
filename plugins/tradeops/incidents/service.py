"""The incident operations every entry point goes through: deadline callbacks, task-failure callbacks, check
reports, the Slack buttons, the UI's action DAG and the incidents pages. Each writes PostgreSQL first (the truth),
then lets the engine page and the outbox deliver.

The state database must have been migrated (``python -m tradeops.incidents migrate``, a deploy step): nothing here
creates or changes its schema.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, get_args

from psycopg.types.json import Jsonb

from tradeops.checks.base import CheckResult, Status
from tradeops.config import TradeOpsConfig, load_config
from tradeops.config.model import RunbookDag
from tradeops.exceptions import IncidentError
from tradeops.incidents import report_files, response_times, runbook, silences, store
from tradeops.incidents.engine import EscalationEngine
from tradeops.incidents.models import (
    SEVERITY_ORDER,
    EventKind,
    Incident,
    IncidentEvent,
    IncidentSource,
    NewIncident,
    Opened,
    Silence,
    SilencePreview,
)
from tradeops.incidents.outbox import SlackOutbox
from tradeops.incidents.response_times import ResponseTimes

log = logging.getLogger("airflow.task.tradeops.incidents")


def check_key(dag_id: str, check: str) -> str:
    """The dedup key of a check's incident: one per check, across runs."""
    return f"check:{dag_id}:{check}"


def runbook_key(dag_id: str) -> str:
    """The dedup key of a runbook's failure incident: one per DAG, across runs, until someone resolves it."""
    return f"runbook:{dag_id}"


def dependency_key(dependency: str) -> str:
    """The dedup key of a shared dependency's outage: one for every DAG and check behind it."""
    return f"dependency:{dependency}"


class IncidentService:
    """The incidents of the state database ``dsn`` (by default, the config's ``connections.state_db``)."""

    def __init__(self, config: TradeOpsConfig | None = None, dsn: str | None = None):
        self.config = config or load_config()
        self._dsn = dsn

    @cached_property
    def dsn(self) -> str:
        from tradeops.connections import postgres_dsn

        return self._dsn or postgres_dsn(self.config.connections.state_db)

    @cached_property
    def engine(self) -> EscalationEngine:
        return EscalationEngine(self.config, self.dsn)

    @cached_property
    def outbox(self) -> SlackOutbox:
        return SlackOutbox(self.config, self.dsn)

    def open(self, new: NewIncident, *, deliver: bool = True) -> Opened:
        """Open (or add an occurrence to) the incident for ``new.dedup_key``; a new one pages level 1 at once."""
        with store.connect(self.dsn) as conn:
            opened = store.open_incident(conn, new)
            if opened.created:
                with conn.transaction():
                    self.engine.process(conn, store.get(conn, opened.incident.id, lock=True), datetime.now(UTC))
        log.info(
            "Incident #%s %s (%s): %s",
            opened.incident.id,
            "opened" if opened.created else "updated",
            new.dedup_key,
            new.title,
        )
        if deliver:
            self.outbox.deliver()
        return opened

    def acknowledge(self, incident_id: int, actor: str, note: str = "") -> Incident:
        return self._change(store.acknowledge, EventKind.ACKNOWLEDGED, incident_id, actor, note)

    def resolve(self, incident_id: int, actor: str, note: str = "") -> Incident:
        """Resolve the incident, its report due in the same transaction, then try to write the report's files."""
        incident = self._change(report_files.resolve, EventKind.RESOLVED, incident_id, actor, note)
        self.write_report(incident.id)
        return incident

    def _change(
        self,
        operation: Callable[[store.Connection, int, str, str], Incident],
        kind: EventKind,
        incident_id: int,
        actor: str,
        note: str,
    ) -> Incident:
        with store.connect(self.dsn) as conn:
            incident = operation(conn, incident_id, actor, note)
            with conn.transaction():
                self.engine.after_change(conn, incident, actor, kind)
        self.outbox.deliver()
        return incident

    def write_report(self, incident_id: int) -> bool:
        """Write the incident's report files if they are due; whether they were. Never raises: what is not
        written stays due, and the escalation engine writes it (:meth:`write_due_reports`)."""
        try:
            with store.connect(self.dsn) as conn:
                return report_files.write(conn, self.config, incident_id)
        except Exception:  # the resolve stands whatever happens to its report
            log.warning("The report of incident #%s stays due", incident_id, exc_info=True)
            return False

    def write_due_reports(self) -> int:
        """Write the incident reports still due (the escalation engine's catch-up); how many. Never raises."""
        try:
            with store.connect(self.dsn) as conn:
                return report_files.write_due(conn, self.config)
        except Exception:  # never stops the engine: they stay due
            log.warning("Writing the due incident reports failed; they stay due", exc_info=True)
            return 0

    # --- silences --------------------------------------------------------------------------------------------

    def preview_silence(self, matcher: str, *, covers_critical: bool = False) -> SilencePreview:
        """What a silence of ``matcher`` would mute now, and which P1/security incidents would keep paging."""
        with store.connect(self.dsn) as conn:
            return silences.preview(conn, matcher, covers_critical=covers_critical)

    def silence(
        self, matcher: str, author: str, reason: str, duration: timedelta, *, covers_critical: bool = False
    ) -> Silence:
        """Mute paging for the incidents whose key starts with ``matcher``, for at most the config's
        ``incidents.max_silence_minutes``; P1 and security incidents only when ``covers_critical`` (confirmed)."""
        longest = timedelta(minutes=self.config.incidents.max_silence_minutes)
        if duration > longest or duration <= timedelta(0):
            raise IncidentError(f"a silence lasts between 1 minute and {longest} (incidents.max_silence_minutes)")
        with store.connect(self.dsn) as conn:
            return silences.create(conn, matcher, author, reason, duration, covers_critical=covers_critical)

    def active_silences(self) -> list[Silence]:
        """The silences in effect, the soonest to end first."""
        with store.connect(self.dsn) as conn:
            return silences.active(conn)

    def end_silence(self, silence_id: int, actor: str) -> Silence:
        """End a silence now; the incidents it held page again at once (unless another silence covers them)."""
        with store.connect(self.dsn) as conn:
            ended, released = silences.end(conn, silence_id, actor)
            now = datetime.now(UTC)
            for incident_id in released:
                with conn.transaction():
                    self.engine.process(conn, store.get(conn, incident_id, lock=True), now)
        self.outbox.deliver()
        return ended

    # --- messages of no incident ------------------------------------------------------------------------------

    def send_report(self, dedup_key: str, channel: str, text: str, blocks: list[dict[str, Any]] | None = None) -> bool:
        """Queue a message of no incident (a run's summary) once per ``dedup_key`` and try to deliver it now.
        Whether it was delivered; if not (Slack down, rate-limited), it stays queued and the escalation engine
        delivers it later. Never raises for a Slack problem."""
        with store.connect(self.dsn) as conn:
            store.enqueue_report(conn, dedup_key, channel, text, blocks)
        try:
            self.outbox.deliver()
        except Exception:  # a notification problem never changes a run's outcome; the message stays queued
            log.warning("Delivering the outbox failed; %s stays queued", dedup_key, exc_info=True)
        with store.connect(self.dsn) as conn:
            state = store.outbox_message_state(conn, dedup_key)
        return bool(state and state["delivered_at"])

    # --- response runbooks -------------------------------------------------------------------------------------

    def record_step(self, incident_id: int, actor: str, step: str, detail: dict[str, Any] | None = None) -> None:
        """Write a response runbook's step on the incident's audit trail: what (``step``, ``detail``), who, now."""
        with store.connect(self.dsn) as conn:
            runbook.record_step(conn, incident_id, actor, step, detail or {})

    def runbook_update(self, incident_id: int, text: str) -> bool:
        """Post ``text`` in the incident's thread through the outbox, asking for its war room first when its
        severity has one (P1) and it has none yet; then try to deliver. Whether a war room was asked for."""
        now = datetime.now(UTC)
        with store.connect(self.dsn) as conn, conn.transaction():
            incident = store.get(conn, incident_id, lock=True)
            wanted = self.engine.policy.severity(incident.severity).war_room
            room = runbook.war_room_name(self.config.slack.war_room_prefix, now, incident.id) if wanted else None
            asked = runbook.queue_update(conn, incident, text, war_room=room, blocks=self.engine.root_blocks(incident))
        try:
            self.outbox.deliver()
        except Exception:  # Slack down: the messages stay queued and the escalation engine delivers them later
            log.warning("Delivering the outbox failed; the update of #%s stays queued", incident_id, exc_info=True)
        return asked

    # --- reading ----------------------------------------------------------------------------------------------

    def get(self, incident_id: int) -> Incident:
        """The incident; :class:`~tradeops.exceptions.IncidentError` when there is none."""
        with store.connect(self.dsn) as conn:
            return store.get(conn, incident_id)

    def timeline(self, incident_id: int) -> list[IncidentEvent]:
        with store.connect(self.dsn) as conn:
            return store.timeline(conn, incident_id)

    def recent(
        self,
        limit: int = 50,
        *,
        statuses: list[str] | None = None,
        severity: str | None = None,
        dag_id: str | None = None,
    ) -> list[Incident]:
        """The latest incidents, newest first; only those of ``statuses``, ``severity``, ``dag_id`` when given."""
        with store.connect(self.dsn) as conn:
            return store.recent_incidents(conn, limit, statuses=statuses, severity=severity, dag_id=dag_id)

    def dag_ids(self) -> list[str]:
        """The DAGs that have incidents (the incidents page's filter)."""
        with store.connect(self.dsn) as conn:
            return store.incident_dag_ids(conn)

    def timelines(self, incident_ids: list[int]) -> dict[int, list[IncidentEvent]]:
        with store.connect(self.dsn) as conn:
            return store.timelines(conn, incident_ids)

    def response_times(self, now: datetime) -> ResponseTimes:
        """MTTA and MTTR per severity and week, over the last eight weeks up to ``now``'s."""
        with store.connect(self.dsn) as conn:
            return response_times.weekly(conn, now)

    def active_by_key(self, dedup_keys: list[str]) -> dict[str, Incident]:
        """The active incident of each of these dedup keys that has one."""
        with store.connect(self.dsn) as conn:
            return store.find_active(conn, dedup_keys)

    def next_wakeup(self) -> datetime | None:
        """When the engine or the outbox next has something to do (None: nothing pending)."""
        with store.connect(self.dsn) as conn:
            return store.next_wakeup(conn)

    # --- the sources ------------------------------------------------------------------------------------------

    def deadline_missed(
        self, dag_run: dict[str, Any], deadline: dict[str, Any], *, dag_id: str, tier: str, severity: str
    ) -> Opened | None:
        """A run missed a deadline tier. A run that already failed (Airflow fires its deadlines anyway) is handled by
        ``escalation.failed_run_deadline_policy``: merged into the failure's incident, suppressed, or separate."""
        run_id = dag_run.get("dag_run_id") or dag_run.get("run_id")
        due = deadline.get("deadline_time")
        summary = f"Run `{run_id}` was still `{dag_run.get('state')}` at its '{tier}' deadline ({due})."
        details = {"tier": tier, "deadline_time": str(due), "run_state": dag_run.get("state")}
        key, title = f"deadline:{dag_id}:{run_id}:{tier}", f"{dag_id} missed its '{tier}' deadline"
        if dag_run.get("state") == "failed":
            policy = self.config.escalation.failed_run_deadline_policy
            if policy == "suppress":
                log.info("Deadline '%s' of failed run %s/%s suppressed by policy", tier, dag_id, run_id)
                return None
            if policy == "merge":  # into the failure's incident: the runbook's, or the one task_failed uses
                runbook = dag_id in get_args(RunbookDag) and self.config.incidents.runbook_failure.severity_for(dag_id)
                key = runbook_key(dag_id) if runbook else f"failure:{dag_id}:{run_id}"
                title = f"{dag_id} failed (and missed its '{tier}' deadline)"
        new = NewIncident(
            dedup_key=key,
            source=IncidentSource.DEADLINE,
            severity=severity,
            title=title,
            summary=summary,
            dag_id=dag_id,
            run_id=run_id,
            details=details,
        )
        return self.open(new)

    def task_failed(self, *, dag_id: str, run_id: str, task_id: str, severity: str, error: str) -> Opened:
        return self.open(
            NewIncident(
                dedup_key=f"failure:{dag_id}:{run_id}",
                source=IncidentSource.TASK_FAILURE,
                severity=severity,
                title=f"{dag_id} failed at {task_id}",
                summary=f"`{task_id}` failed: {error}"[:2000],
                dag_id=dag_id,
                run_id=run_id,
                task_id=task_id,
                details={"task_id": task_id},
            )
        )

    def report_checks(self, dag_id: str, run_id: str, results: dict[str, CheckResult]) -> dict[str, list[int]]:
        """Report a run's check results (by task id): an incident per failed check, at its
        ``incidents.check_severity``; but the checks that could not reach their dependency are held back under one
        incident for that dependency (at the most severe of theirs), each listed on its timeline, and open their
        own only if they still fail once it is back. Incidents of checks that pass again, and of dependencies
        reachable again, are resolved. Returns the ids ``opened`` (or updated) and ``resolved``."""
        severities = self.config.incidents.check_severity
        failed = {task_id: r for task_id, r in results.items() if r.status is Status.FAIL}
        held: dict[str, dict[str, CheckResult]] = {}
        for task_id, result in failed.items():
            if not result.reachable and result.dependency:
                held.setdefault(result.dependency, {})[task_id] = result
        opened = []
        for dependency, checks in held.items():
            severity = min((severities.get(t, "P3") for t in checks), key=SEVERITY_ORDER.index)
            opened.append(self._dependency_down(dag_id, run_id, dependency, checks, severity).incident.id)
        for task_id, result in failed.items():
            if result.dependency not in held or result.reachable:
                found = self.check_failed(
                    dag_id=dag_id,
                    run_id=run_id,
                    check=task_id,
                    title=result.title,
                    summary=result.summary,
                    severity=severities.get(task_id, "P3"),
                )
                opened.append(found.incident.id)
        passed = {check_key(dag_id, t): f"{r.title}: {r.summary}" for t, r in results.items() if t not in failed}
        back = {r.dependency for r in results.values() if r.dependency and r.reachable} - set(held)
        passed |= {dependency_key(d): f"{d} answered again" for d in back}
        resolved = []
        for key, incident in self.active_by_key(list(passed)).items():
            self.resolve(incident.id, "tradeops (the check passed again)", note=passed[key])
            resolved.append(incident.id)
        return {"opened": opened, "resolved": resolved}

    def report_failed_check(
        self, dag_id: str, run_id: str, task_id: str, result: CheckResult, *, behind: Collection[str] = ()
    ) -> Opened:
        """A check's confirmed failure, reported by its own task at once (a P1 pages within seconds of it), as
        :meth:`report_checks` would: its incident, or, when it could not reach its dependency, the dependency's,
        as severe as the most severe of the checks ``behind`` it (the run's other checks of that dependency, which
        join it as they fail). :meth:`report_checks` later sees the whole run: it deduplicates into these
        incidents and does all the resolving (a dependency is back only when no check of the run failed to reach
        it)."""
        severities = self.config.incidents.check_severity
        severity = severities.get(task_id, "P3")
        if result.dependency and not result.reachable:
            severity = min((severity, *(severities.get(t, "P3") for t in behind)), key=SEVERITY_ORDER.index)
            return self._dependency_down(dag_id, run_id, result.dependency, {task_id: result}, severity)
        return self.check_failed(
            dag_id=dag_id, run_id=run_id, check=task_id, title=result.title, summary=result.summary, severity=severity
        )

    def _dependency_down(
        self, dag_id: str, run_id: str, dependency: str, checks: dict[str, CheckResult], severity: str
    ) -> Opened:
        first = next(iter(checks.values()))
        opened = self.open(
            NewIncident(
                dedup_key=dependency_key(dependency),
                source=IncidentSource.CHECK,
                severity=severity,
                title=f"{dependency} unreachable: the checks behind it are held back",
                summary=first.summary,
                dag_id=dag_id,
                run_id=run_id,
                details={"dependency": dependency, "held_back": sorted(checks)},
            )
        )
        with store.connect(self.dsn) as conn, conn.transaction():
            incident = store.get(conn, opened.incident.id, lock=True)  # checks that fail one by one join the list
            held_back = sorted({*incident.details.get("held_back", ()), *checks})
            if held_back != incident.details.get("held_back"):
                store.update_fields(conn, incident.id, details=Jsonb({**incident.details, "held_back": held_back}))
            for task_id, result in checks.items():
                store.event(
                    conn,
                    opened.incident.id,
                    EventKind.HELD_BACK,
                    detail={"dag_id": dag_id, "run_id": run_id, "check": task_id, "summary": result.summary},
                )
        return opened

    def check_failed(self, *, dag_id: str, run_id: str, check: str, title: str, summary: str, severity: str) -> Opened:
        """One incident per failing check, kept (and counted) across runs until someone resolves it."""
        return self.open(
            NewIncident(
                dedup_key=check_key(dag_id, check),
                source=IncidentSource.CHECK,
                severity=severity,
                title=f"{title} check failing",
                summary=summary,
                dag_id=dag_id,
                run_id=run_id,
                task_id=check,
                details={"check": check},
            )
        )
