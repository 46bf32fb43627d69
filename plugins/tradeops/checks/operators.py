"""Operators that run checks, summarise them, and give a run its verdict."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from tradeops.checks.base import RESULT_KEY, Check, CheckResult, Status, worst
from tradeops.exceptions import CheckFailed
from tradeops.incidents.mixins import WithIncidentService

if TYPE_CHECKING:
    from airflow.sdk import Context


class CheckReporter(WithIncidentService, BaseOperator):
    """A task that turns the results of a DAG's check tasks into incidents, after them whatever their states
    (``all_done``). The DAG kit leaves those check tasks out of the runbook-failure page: each failure is already
    an incident of its own. With ``reports_each_check``, a check task also reports its own confirmed failure at once.

    :param check_task_ids: the check tasks (:class:`CheckOperator`) whose results it reports.
    """

    reports_each_check = False

    def __init__(self, *, check_task_ids: Sequence[str], **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.check_task_ids = list(check_task_ids)


class CheckOperator(WithIncidentService, BaseOperator):
    """Run one :class:`~tradeops.checks.base.Check` as a task.

    A failure counts only when a second look after ``incidents.recheck_after`` confirms it
    (:meth:`~tradeops.checks.base.Check.confirmed_look`): one transient error passes. The result is pushed to XCom
    under ``check_result`` whatever it is, including when the thing to check cannot be reached (a failed check,
    like any other). A confirmed failure of a check that the DAG's
    :class:`~tradeops.incidents.operators.ReportCheckIncidentsOperator` reports is reported by the task itself at
    once (its incident, or its dependency's; level 1 is paged before the task ends), then the task fails through
    :class:`~tradeops.exceptions.CheckFailed`, so the grid shows exactly which check is red; a retry is a later
    look, deduplicated into the same incident. Reporting never changes the outcome: when the state database cannot
    be reached, the error is logged and ``report_incidents`` reports the failure after the checks.

    :param check: the check to run (its ``name`` is the result's name; the task id names the incident).
    """

    ui_color = "#e8f4ea"

    def __init__(self, *, check: Check, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(check, Check):  # refused when the DAG is parsed, not when the task runs
            raise TypeError(f"check must be a Check, got {check!r}")
        self.check = check

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.config import load_config

        look = self.check.confirmed_look(load_config())
        result = look.result
        self.log.info("%s: %s: %s", result.title, result.status.value.upper(), result.summary)
        for finding in result.findings:
            if finding.status is not Status.OK:
                self.log.info("  %s [%s] %s", finding.id, finding.status.value, finding.message)
        ti = context["ti"]
        ti.xcom_push(key=RESULT_KEY, value=result.to_dict())
        if result.status is Status.FAIL:
            self.report_failure(ti, result)
            message = f"{result.title}: {result.summary}"
            if result.reachable and not self.check.retry_after_fail:
                raise AirflowFailException(message) from look.error  # a retry would read the same thing
            raise CheckFailed(message) from look.error
        return result.to_dict()

    def reporter(self) -> CheckReporter | None:
        """The task of this DAG that reports this check's incident, if any (its ``check_task_ids`` name it)."""
        if not self.has_dag():
            return None
        return next(
            (
                task
                for task in self.dag.tasks
                if isinstance(task, CheckReporter) and task.reports_each_check and self.task_id in task.check_task_ids
            ),
            None,
        )

    def report_failure(self, ti: Any, result: CheckResult) -> None:
        """Report a confirmed failure now, when the DAG reports this check's incidents; log any error, raise none."""
        reporter = self.reporter()
        if reporter is None:
            return
        dag_id, run_id = ti.dag_id, ti.run_id
        behind = [
            task.task_id
            for task in map(self.dag.task_dict.get, reporter.check_task_ids)
            if isinstance(task, CheckOperator) and result.dependency and task.check.dependency == result.dependency
        ]
        try:
            opened = self.incidents.report_failed_check(dag_id, run_id, self.task_id, result, behind=behind)
        except Exception:
            self.log.exception("Reporting the incident failed; %s will report it after the checks", reporter.task_id)
            return
        self.log.info(
            "Incident #%s %s (%s)",
            opened.incident.id,
            "opened (level 1 paged unless silenced)" if opened.created else "updated (already open: no new page)",
            opened.incident.dedup_key,
        )


class HealthSummaryOperator(WithIncidentService, BaseOperator):
    """Collect the checks' results, write a JSON report, send one Slack summary, then give the verdict.

    Runs whatever the checks' states (``all_done``). Fails when any check failed, so the DAG run is red exactly when
    the platform is unhealthy; a check task that ended without reporting counts as a failed check. The summary goes
    through the incidents' durable outbox under one key per run (``summary:<dag>:<run>``): a retry never sends it
    twice, and a Slack problem (rate limits, an outage) leaves it queued for the escalation engine to deliver later,
    never changing the run's outcome.

    :param check_task_ids: the check tasks (:class:`CheckOperator`) to summarise, in the order to list them.
    :param channel: the Slack channel to post the summary to; default: the config's ops channel. (templated)
    :param title: the summary's headline.
    """

    template_fields: Sequence[str] = ("channel",)
    ui_color = "#fdf2d0"

    def __init__(
        self,
        *,
        check_task_ids: Sequence[str],
        channel: str | None = None,
        title: str = "Daily health check",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.check_task_ids = list(check_task_ids)
        self.channel = channel
        self.title = title

    def _missing(self, task_id: str) -> CheckResult:
        """The result of a check task that ended before reporting, under its check's title."""
        task = self.dag.task_dict.get(task_id) if self.has_dag() else None
        return CheckResult.missing(task_id, task.check.title if isinstance(task, CheckOperator) else None)

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.config import load_config
        from tradeops.reporting.files import write_json_report
        from tradeops.reporting.links import run_url
        from tradeops.slack.messages import health_summary

        ti, dag_run = context["ti"], context["dag_run"]
        results = []
        for task_id in self.check_task_ids:
            data = ti.xcom_pull(task_ids=task_id, key=RESULT_KEY)
            results.append(CheckResult.from_dict(data) if data else self._missing(task_id))
        overall = worst(r.status for r in results)
        url = run_url(ti.dag_id, ti.run_id)
        now = datetime.now(UTC)
        report = write_json_report(
            ti.dag_id,
            ti.run_id,
            {
                "dag_id": ti.dag_id,
                "run_id": ti.run_id,
                "run_type": str(dag_run.run_type),
                "generated_at": now.isoformat(),
                "overall": overall.value,
                "run_url": url,
                "results": [r.to_dict() for r in results],
            },
        )
        self.log.info("Report written to %s", report)
        text, blocks = health_summary(self.title, results, url, now.strftime("%Y-%m-%d %H:%M UTC"))
        channel = self.channel or load_config().slack.channels["ops"]
        delivered = self.incidents.send_report(f"summary:{ti.dag_id}:{ti.run_id}", channel, text, blocks)
        self.log.info("Summary %s %s", "posted to" if delivered else "queued for", channel)
        failed = [r for r in results if r.status is Status.FAIL]
        if failed:
            raise AirflowFailException(
                f"{len(failed)} of {len(results)} health checks failed: "
                + "; ".join(f"{r.title}: {r.summary}" for r in failed)
            )
        return {"overall": overall.value, "report": str(report), "summary_delivered": delivered}


class RunVerdictOperator(BaseOperator):
    """The verdict of a DAG whose reporting tasks run whatever happened (``all_done``): Airflow decides a run's state
    from its leaf tasks only, so without this a failed step followed by a successful report would leave the run
    green. Runs only when a task upstream failed (``one_failed``), and then fails the run; skipped otherwise. Takes
    only :class:`~airflow.sdk.BaseOperator`'s arguments."""

    ui_color = "#f2f2f2"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "one_failed")
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)

    def execute(self, context: Context) -> None:
        ti = context["ti"]
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        failed = sorted(task_id for task_id, state in states.items() if state in ("failed", "upstream_failed"))
        raise AirflowFailException(f"failed: {', '.join(failed) or 'see the grid'}")
