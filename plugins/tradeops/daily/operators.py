"""Operators of the end of a trading day: each works on the session the run closes out (the last session opened at
or before the run's ``run_after``) and is idempotent per session: a re-run writes the same report over the first,
replaces its own metrics row, and sends no second Slack message."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context

    from tradeops.calendar.sessions import Session
    from tradeops.config import TradeOpsConfig
    from tradeops.platform.hooks import TradingPlatformHook


class _SessionOperator(BaseOperator):
    """A step about the session the run closes out.

    :param platform_conn_id: the platform API's Airflow connection; default: the config's ``connections.platform_api``.
    """

    def __init__(self, *, platform_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.platform_conn_id = platform_conn_id

    @cached_property
    def config(self) -> TradeOpsConfig:
        from tradeops.config import load_config

        return load_config()

    def session(self, context: Context) -> Session:
        from tradeops.calendar.sessions import sessions_for
        from tradeops.daily.report import closed_session

        return closed_session(sessions_for(self.config.platform.exchange), context["dag_run"].run_after)

    def platform(self) -> TradingPlatformHook:
        from tradeops.platform.hooks import TradingPlatformHook

        return TradingPlatformHook(self.platform_conn_id or self.config.connections.platform_api)


class TradingReportOperator(_SessionOperator):
    """The session's trading report from the platform (``GET /v1/trades/summary``): trades, contracts, notional and
    realised P&L, per symbol and per strategy, counted from the open until the next session opens (the close-out's
    own orders included). Written as ``<session date>-trading.json`` in the DAG's reports folder (a re-run writes
    the same file again). Returns the totals and the report's path.

    :param platform_conn_id: the platform API's Airflow connection; default: the config's ``connections.platform_api``.
    """

    ui_color = "#e9f0fb"

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.calendar.sessions import sessions_for
        from tradeops.daily.report import trading_window
        from tradeops.reporting.files import write_json_report

        session = self.session(context)
        since, until = trading_window(sessions_for(self.config.platform.exchange), session)
        summary = self.platform().get("/v1/trades/summary", since=since.isoformat(), until=until.isoformat())
        ti = context["ti"]
        path = write_json_report(
            ti.dag_id,
            f"{session.day}-trading",
            {
                "session_date": session.day.isoformat(),
                "exchange": self.config.platform.exchange,
                "open": session.open.isoformat(),
                "close": session.close.isoformat(),
                "early_close": session.early_close,
                **summary,
            },
        )
        self.log.info("%s: %d trades, realised P&L %.2f; report %s", session.day, summary["trades"],
                      summary["realized_pnl"], path)  # fmt: skip
        totals = ("trades", "contracts", "notional", "realized_pnl")
        return {"session_date": session.day.isoformat(), **{k: summary[k] for k in totals}, "path": str(path)}


class LogArchiveOperator(_SessionOperator):
    """Archive the session's platform logs (``POST /v1/logs/archive``, Idempotency-Key ``log-archive:<session
    date>``: a re-run gets the same archive back). Returns the archive's ``name``, ``bytes``, ``sha256`` and
    ``location``.

    :param platform_conn_id: the platform API's Airflow connection; default: the config's ``connections.platform_api``.
    """

    ui_color = "#eef0f2"

    def execute(self, context: Context) -> dict[str, Any]:
        day = self.session(context).day
        archive = self.platform().request(
            "POST", "/v1/logs/archive", json={"day": day.isoformat()}, idempotency_key=f"log-archive:{day}"
        )
        self.log.info("Logs of %s archived: %s (%d bytes, sha256 %s)", day, archive["name"], archive["bytes"],
                      archive["sha256"])  # fmt: skip
        return archive


class StoreDailyMetricsOperator(_SessionOperator):
    """Upsert the session's row of ``tradeops.daily_metrics`` in the state database: the trading report's totals,
    the positions closed (and any left open), the backup's and the log archive's sizes (NULL when that step did not
    succeed) and the platform's ``/v1/performance/metrics?timeframe=1d``. Runs whatever happened before, but fails
    without a trading report (a row of zeros would read as a day without trades).

    :param platform_conn_id: the platform API's Airflow connection; default: the config's ``connections.platform_api``.
    """

    ui_color = "#f0ebf8"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.connections import postgres_dsn
        from tradeops.daily import store
        from tradeops.positions.operators import STILL_OPEN_KEY

        ti = context["ti"]
        session = self.session(context)
        trades = ti.xcom_pull(task_ids="trading_report")
        if not trades:
            raise AirflowFailException("no trading report for this session: nothing to store")
        closed = ti.xcom_pull(task_ids="close_positions")
        still_open = ti.xcom_pull(task_ids="close_positions", key=STILL_OPEN_KEY)
        backup = ti.xcom_pull(task_ids="backup") or {}
        archive = ti.xcom_pull(task_ids="log_archive") or {}
        row = {
            "session_date": session.day,
            "exchange": self.config.platform.exchange,
            **{k: trades[k] for k in ("trades", "contracts", "notional", "realized_pnl")},
            "positions_closed": closed["closed"] if closed else None,
            "positions_open": 0 if closed else (len(still_open) if still_open is not None else None),
            "backup_bytes": backup.get("bytes"),
            "log_archive_bytes": archive.get("bytes"),
            "performance": self.platform().get("/v1/performance/metrics", timeframe="1d"),
            "run_id": ti.run_id,
        }
        store.upsert(postgres_dsn(self.config.connections.state_db), row)
        self.log.info("tradeops.daily_metrics[%s] = %s", session.day, row)
        return {**row, "session_date": session.day.isoformat()}


class EndOfDayReportOperator(_SessionOperator):
    """The end-of-day report: every step's outcome in one JSON report (``<session date>-eod.json``) and one Slack
    message to the ops channel through the incidents' outbox, whatever happened (``all_done``). It says FAILED,
    never complete, when any step failed or could not run. Dedup key ``eod:<session date>``, or
    ``eod:<session date>:failed:<the failed steps>``: a re-run of the session that ends the same way sends nothing
    more, while one that fails differently, or completes after a failed one, says so once. A Slack problem leaves
    the message queued; it never changes the run's outcome (the DAG's verdict task fails the run when a step failed).

    :param steps: ``(task id, label)`` of the steps to report, in order.
    :param channel: the Slack channel; default: the config's ops channel. (templated)
    """

    template_fields: Sequence[str] = ("channel",)
    ui_color = "#fdf2d0"

    def __init__(self, *, steps: Sequence[tuple[str, str]], channel: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.steps = list(steps)
        self.channel = channel

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.daily.report import Step, end_of_day_message, step_details
        from tradeops.incidents.service import IncidentService
        from tradeops.positions.operators import STILL_OPEN_KEY
        from tradeops.reporting.files import write_json_report
        from tradeops.reporting.links import run_url

        ti = context["ti"]
        session = self.session(context)
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        results = {task_id: ti.xcom_pull(task_ids=task_id) for task_id, _ in self.steps}
        results["still_open"] = ti.xcom_pull(task_ids="close_positions", key=STILL_OPEN_KEY)
        details = step_details(results)
        steps = [
            Step(task_id, label, states.get(task_id) or "none", details.get(task_id, ""))
            for task_id, label in self.steps
        ]
        url = run_url(ti.dag_id, ti.run_id)
        exchange = self.config.platform.exchange
        text, blocks, failed = end_of_day_message(session, exchange, steps, url)
        path = write_json_report(
            ti.dag_id,
            f"{session.day}-eod",
            {
                "session_date": session.day.isoformat(),
                "exchange": exchange,
                "run_id": ti.run_id,
                "run_url": url,
                "generated_at": datetime.now(UTC).isoformat(),
                "outcome": "failed" if failed else "complete",
                "steps": [{"task_id": s.task_id, "state": s.state, "detail": s.detail} for s in steps],
                "results": results,
            },
        )
        key = f"eod:{session.day}" + (f":failed:{'+'.join(failed)}" if failed else "")
        channel = self.channel or self.config.slack.channels["ops"]
        delivered = IncidentService().send_report(key, channel, text, blocks)
        self.log.info("%s; report %s; Slack %s (%s)", text, path, "delivered" if delivered else "queued", key)
        return {"outcome": "failed" if failed else "complete", "dedup_key": key, "report": str(path),
                "delivered": delivered}  # fmt: skip
