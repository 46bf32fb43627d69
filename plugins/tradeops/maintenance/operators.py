"""The maintenance window's gate, and the guard that abandons the steps inside the window once it has closed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

if TYPE_CHECKING:
    from airflow.sdk import Context

    from tradeops.config.model import ClockAnchor

WINDOW_END_KEY = "window_end"  # the XCom key under which the gate leaves the end of the window it opened
GATE_TASK_ID = "enter_window"  # the task id of the gate the guarded steps read the window from


class EnterMaintenanceWindowOperator(BaseOperator):
    """Refuse to start outside the window of ``schedule`` or while the exchange is open, unless the glass is broken
    with a reason; push the window's end for :func:`abandon_after_window`. Its task id is ``enter_window``
    (:data:`GATE_TASK_ID`), where the guarded steps look for the window.

    :param schedule: the clock anchor the window opens at (``{anchor: clock, at: "02:00", days: [sun]}``); default:
        the DAG's own schedule in the config (``schedules.<dag_id>``).
    :param length: how long the window stays open; default: the config's ``weekly_maintenance.window``.
    :param exchange: the exchange whose calendar says when it is open; default: the config's ``platform.exchange``.
    :param break_glass_reason: empty to keep to the window; otherwise start anyway, outside the window or while the
        exchange is open, for this reason (logged). A blank reason is refused. (templated)
    """

    template_fields: Sequence[str] = ("break_glass_reason",)
    ui_color = "#fff4d6"

    def __init__(
        self,
        *,
        schedule: ClockAnchor | dict[str, Any] | None = None,
        length: timedelta | None = None,
        exchange: str | None = None,
        break_glass_reason: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.schedule = schedule
        self.length = length
        self.exchange = exchange
        self.break_glass_reason = break_glass_reason

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.config import load_config
        from tradeops.exceptions import WindowClosed
        from tradeops.maintenance.window import MaintenanceWindow

        reason = "" if self.break_glass_reason is None else str(self.break_glass_reason)
        forced = reason != ""  # a blank reason is refused by the window, never taken for "no break-glass"
        config = load_config()
        schedule = self.schedule if self.schedule is not None else config.schedules[context["ti"].dag_id]  # type: ignore[index]
        length = self.length if self.length is not None else config.weekly_maintenance.window
        window = MaintenanceWindow(schedule, length, self.exchange or config.platform.exchange)
        try:
            admitted = window.admit(datetime.now(UTC), break_glass=forced, reason=reason)
        except WindowClosed as err:
            raise AirflowFailException(str(err)) from None
        if forced:
            self.log.warning("BREAK-GLASS maintenance: %s", reason)
        self.log.info("Maintenance window open until %s", admitted.end.isoformat())
        context["ti"].xcom_push(key=WINDOW_END_KEY, value=admitted.end.isoformat())
        return {"start": admitted.start.isoformat(), "end": admitted.end.isoformat(), "break_glass": forced}


def abandon_after_window(context: Context) -> None:
    """The ``pre_execute`` of every step inside the window (set through ``default_args``): a step that would start
    after the window has closed is skipped (and so are the steps after it), leaving what already ran intact."""
    end = context["ti"].xcom_pull(task_ids=GATE_TASK_ID, key=WINDOW_END_KEY)
    if end is None:
        raise AirflowSkipException("the maintenance window was never entered")
    if datetime.now(UTC) >= datetime.fromisoformat(end):
        raise AirflowSkipException(f"the maintenance window closed at {end}; remaining steps abandoned")
