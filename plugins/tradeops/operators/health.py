"""Operators of the health check: one task per check, one summary that reports and gives the verdict."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from tradeops.checks.health import HEALTH_CHECKS
from tradeops.checks.base import RESULT_KEY, CheckResult, Status, worst


class HealthCheckFailed(AirflowException):
    """The check ran and found a problem (retried: the next try checks again)."""


class HealthCheckOperator(BaseOperator):
    """Run one check from :data:`tradeops.checks.health.HEALTH_CHECKS`.

    The result is pushed to XCom under ``check_result`` whatever it is; the task fails when the check fails,
    including when the thing to check cannot be reached, so the grid shows exactly which check is red.
    """

    ui_color = "#e8f4ea"

    def __init__(self, *, check: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if check not in HEALTH_CHECKS:
            raise ValueError(f"unknown health check {check!r}; known: {', '.join(HEALTH_CHECKS)}")
        self.check = check

    def execute(self, context) -> None:
        from tradeops.config import load_config

        config = load_config()
        check = HEALTH_CHECKS[self.check]
        try:
            result = check.evaluate(check.collect(config), config)
        except Exception as err:  # an unreachable dependency is a failed check, reported like any other
            self.log.exception("%s could not be checked", check.title)
            result = check.result(Status.FAIL, f"could not check: {type(err).__name__}: {err}"[:300])
        self.log.info("%s: %s: %s", result.title, result.status.value.upper(), result.summary)
        context["ti"].xcom_push(key=RESULT_KEY, value=result.to_dict())
        if result.status is Status.FAIL:
            raise HealthCheckFailed(f"{result.title}: {result.summary}")


class HealthSummaryOperator(BaseOperator):
    """Collect the checks' results, write a JSON report, post one Slack summary, then give the verdict.

    Runs whatever the checks' states (``all_done``). Fails (without retrying, so Slack gets one summary)
    when any check failed, so the DAG run is red exactly when the platform is unhealthy.
    """

    template_fields: Sequence[str] = ("channel",)
    ui_color = "#fdf2d0"

    def __init__(self, *, check_task_ids: Sequence[str], channel: str, slack_conn_id: str,
                 title: str = "Daily health check", **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.check_task_ids = list(check_task_ids)
        self.channel = channel
        self.slack_conn_id = slack_conn_id
        self.title = title

    def _results(self, ti) -> list[CheckResult]:
        results = []
        for task_id in self.check_task_ids:
            data = ti.xcom_pull(task_ids=task_id, key=RESULT_KEY)
            if data:
                results.append(CheckResult.from_dict(data))
            else:
                check = HEALTH_CHECKS.get(task_id)
                results.append(CheckResult(task_id, check.title if check else task_id, Status.FAIL,
                                           "no result: the task ended before reporting (see its log)"))
        return results

    def execute(self, context) -> dict:
        from tradeops.reporting.files import write_json_report
        from tradeops.reporting.links import run_url
        from tradeops.slack.client import post_message
        from tradeops.slack.messages import health_summary

        ti, dag_run = context["ti"], context["dag_run"]
        results = self._results(ti)
        overall = worst(r.status for r in results)
        url = run_url(ti.dag_id, ti.run_id)
        now = datetime.now(UTC)
        report = write_json_report(ti.dag_id, ti.run_id, {
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "run_type": str(dag_run.run_type),
            "generated_at": now.isoformat(),
            "overall": overall.value,
            "run_url": url,
            "results": [r.to_dict() for r in results],
        })
        self.log.info("Report written to %s", report)
        text, blocks = health_summary(self.title, results, url, now.strftime("%Y-%m-%d %H:%M UTC"))
        posted = post_message(self.slack_conn_id, self.channel, text, blocks)
        self.log.info("Summary posted to %s (ts %s)", self.channel, posted["ts"])
        failed = [r for r in results if r.status is Status.FAIL]
        if failed:
            raise AirflowFailException(
                f"{len(failed)} of {len(results)} health checks failed: "
                + "; ".join(f"{r.title}: {r.summary}" for r in failed)
            )
        return {"overall": overall.value, "report": str(report), "slack_ts": posted["ts"]}
