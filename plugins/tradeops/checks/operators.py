"""Operators that run checks, summarise them, and give a run its verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from tradeops.checks.base import RESULT_KEY, Check, Status
from tradeops.exceptions import CheckFailed

if TYPE_CHECKING:
    from airflow.sdk import Context


class CheckOperator(BaseOperator):
    """Run one :class:`~tradeops.checks.base.Check` as a task.

    The result is pushed to XCom under ``check_result`` whatever it is, including when the thing to check cannot
    be reached (a failed check, like any other); the task fails through :class:`~tradeops.exceptions.CheckFailed`
    when the status is ``fail``, so the grid shows exactly which check is red and a retry checks again.

    :param check: the check to run (its ``name`` is the result's name; the task id names the incident).
    """

    ui_color = "#e8f4ea"

    def __init__(self, *, check: Check, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.config import load_config

        config = load_config()
        error: Exception | None = None
        try:
            result = self.check.run(config)
        except Exception as err:  # an unreachable dependency is a failed check, reported like any other
            self.log.exception("%s could not be checked", self.check.title)
            result, error = self.check.unreachable(err), err
        self.log.info("%s: %s: %s", result.title, result.status.value.upper(), result.summary)
        for finding in result.findings:
            if finding.status is not Status.OK:
                self.log.info("  %s [%s] %s", finding.id, finding.status.value, finding.message)
        context["ti"].xcom_push(key=RESULT_KEY, value=result.to_dict())
        if result.status is Status.FAIL:
            raise CheckFailed(f"{result.title}: {result.summary}") from error
        return result.to_dict()
