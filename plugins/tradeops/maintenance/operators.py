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
    """Refuse to start outside the window of ``schedule`` or while the exchange is open, unless ``break_glass`` is
    set with a ``reason``; push the window's end for :func:`abandon_after_window`. Templated from the run's params,
    in a DAG with ``render_template_as_native_obj`` (``break_glass`` stays a boolean). Its task id is
    ``enter_window`` (:data:`GATE_TASK_ID`), where the guarded steps look for the window.

    :param schedule: the clock anchor the window opens at (``{anchor: clock, at: "02:00", days: [sun]}``); default:
        the DAG's own schedule in the config (``schedules.<dag_id>``).
    :param length: how long the window stays open; default: the config's ``weekly_maintenance.window``.
    :param exchange: the exchange whose calendar says when it is open; default: the config's ``platform.exchange``.
    :param break_glass: start anyway, outside the window or while the exchange is open; needs a ``reason``. A
        template (``"{{ params.break_glass }}"``) must render to a boolean. (templated)
    :param reason: why the glass was broken (logged). (templated)
    """

    template_fields: Sequence[str] = ("break_glass", "reason")
    ui_color = "#fff4d6"

    def __init__(
        self,
        *,
        schedule: ClockAnchor | dict[str, Any] | None = None,
        length: timedelta | None = None,
        exchange: str | None = None,
        break_glass: bool | str = False,
        reason: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.schedule = schedule
        self.length = length
        self.exchange = exchange
        self.break_glass = break_glass
        self.reason = reason

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.config import load_config
        from tradeops.exceptions import WindowClosed
        from tradeops.maintenance.window import MaintenanceWindow

        if not isinstance(self.break_glass, bool):  # the DAG renders params natively: a form value is a boolean
            raise AirflowFailException(f"break_glass must be true or false, got {self.break_glass!r}")
        forced = self.break_glass
        config = load_config()
        schedule = self.schedule if self.schedule is not None else config.schedules[context["ti"].dag_id]  # type: ignore[index]
        length = self.length if self.length is not None else config.weekly_maintenance.window
        window = MaintenanceWindow(schedule, length, self.exchange or config.platform.exchange)
        try:
            admitted = window.admit(datetime.now(UTC), break_glass=forced, reason=str(self.reason))
        except WindowClosed as err:
            raise AirflowFailException(str(err)) from None
        if forced:
            self.log.warning("BREAK-GLASS maintenance: %s", self.reason)
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
