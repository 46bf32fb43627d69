"""The security check's reporting tasks: tracking findings across runs (and their incidents), and the report."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from tradeops.checks.operators import CheckReporter, HealthSummaryOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


TRACKED_KEY = "tracked_findings"


class TrackFindingsOperator(CheckReporter):
    """Compare this run's findings with the open ones of earlier runs: each is new, still open or fixed
    (``tradeops.security_findings``). Every failed finding is one incident (``security:<finding id>``, opened or
    one more occurrence; critical ones at ``security.critical_severity``, the rest at ``high_severity``), and the
    incident of a fixed finding is resolved. A check that could not read what it checks fixes nothing. Runs
    whatever the checks' states (``all_done``); pushes the tracked findings under ``tracked_findings``.

    :param check_task_ids: the check tasks whose findings are tracked.
    """

    ui_color = "#fde2e2"

    def execute(self, context: Context) -> dict[str, list[str]]:
        from tradeops.checks.base import RESULT_KEY, CheckResult
        from tradeops.security import findings

        ti = context["ti"]
        results = {
            task_id: CheckResult.from_dict(data)
            for task_id in self.check_task_ids
            if (data := ti.xcom_pull(task_ids=task_id, key=RESULT_KEY))
        }
        now = datetime.now(UTC)
        dsn = self.incidents.dsn
        tracked = findings.classify(results, findings.open_findings(dsn), now)
        tracked = findings.raise_incidents(self.incidents, self.incidents.config, tracked, ti.dag_id, ti.run_id)
        findings.record(dsn, tracked, ti.run_id, now)
        ti.xcom_push(key=TRACKED_KEY, value=[t.to_dict() for t in tracked])
        by_state: dict[str, list[str]] = {findings.NEW: [], findings.OPEN: [], findings.FIXED: []}
        for t in tracked:
            by_state[t.state].append(t.id)
            self.log.info("%-10s %s [%s] %s", t.state, t.id, t.status, t.message)
        return by_state


class SecurityReportOperator(HealthSummaryOperator):
    """Write the security report (HTML, summary on top, and JSON) under ``reports_dir()/daily_security_check/``,
    post one summary to the security channel (through the outbox, once per run), then fail the run when any check
    failed. Runs whatever happened (``all_done``).

    :param check_task_ids: the check tasks, in the order to list them.
    :param track_task_id: the :class:`TrackFindingsOperator` whose new / still open / fixed view is reported.
    :param channel: the Slack channel (default: ``slack.channels.security``). (templated)
    """

    def __init__(self, *, track_task_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("title", "Daily security check")
        super().__init__(**kwargs)
        self.track_task_id = track_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.checks.base import RESULT_KEY, CheckResult, Status, worst
        from tradeops.config import load_config
        from tradeops.reporting.links import run_url
        from tradeops.security.report import render, slack_summary, write

        config = load_config()
        ti = context["ti"]
        results = []
        for task_id in self.check_task_ids:
            data = ti.xcom_pull(task_ids=task_id, key=RESULT_KEY)
            results.append(CheckResult.from_dict(data) if data else self._missing(task_id))
        tracked = ti.xcom_pull(task_ids=self.track_task_id, key=TRACKED_KEY)
        now = datetime.now(UTC)
        url = run_url(ti.dag_id, ti.run_id)
        html = render(config, results, tracked, run_id=ti.run_id, run_url=url, generated_at=now)
        paths = write(ti.dag_id, ti.run_id, html, results, tracked)
        self.log.info("Report written to %s", paths["html"])
        channel = self.channel or config.slack.channels["security"]
        text = slack_summary(results, tracked, paths["html"], url)
        delivered = self.incidents.send_report(f"summary:{ti.dag_id}:{ti.run_id}", channel, text)
        self.log.info("Summary %s %s", "posted to" if delivered else "queued for", channel)
        failed = [r for r in results if r.status is Status.FAIL]
        if failed:
            raise AirflowFailException(
                f"{len(failed)} of {len(results)} security checks failed: " + "; ".join(r.title for r in failed)
            )
        return {
            "overall": worst(r.status for r in results).value,
            "report": str(paths["html"]),
            "summary_delivered": delivered,
        }
