"""The end-of-day close-out: flatten the book through the platform API and prove it is flat."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from tradeops.exceptions import PagedFailure
from tradeops.retry import backoff_delay

if TYPE_CHECKING:
    from airflow.sdk import Context

    from tradeops.platform.hooks import TradingPlatformHook

MAX_BACKOFF = timedelta(seconds=60)
STILL_OPEN_KEY = "still_open"  # pushed before the task fails: the end-of-day report names them


def read_back_delays(attempts: int, backoff: timedelta, cap: timedelta = MAX_BACKOFF) -> list[float]:
    """Seconds to wait before each read-back of the positions: the first at once, then ``backoff`` doubling, at most
    ``cap`` (5 attempts, 5 s: 0, 5, 10, 20, 40)."""
    return [0.0] + [backoff_delay(n, backoff.total_seconds(), cap.total_seconds()) for n in range(1, attempts)]


class PositionsLeftOpen(PagedFailure, AirflowFailException):
    """Positions still open after every read-back: the task has opened their P1 incident itself."""


def close_all_key(session_day: str, run_id: str, try_number: int) -> str:
    """The close-all order's Idempotency-Key: the session first, then the run and its try (see
    :class:`ClosePositionsOperator` for why a new try is a new key)."""
    return f"close-all:{session_day}:{run_id}:try{try_number}"


def describe(positions: Sequence[dict[str, Any]]) -> str:
    return ", ".join(f"{p['symbol']} {p['qty']:g}" for p in positions)


class ClosePositionsOperator(BaseOperator):
    """Close every open position of the session (``POST /v1/positions/close-all``) and verify none remains
    (``GET /v1/positions``), reading back up to ``trading_day.positions.attempts`` times, ``backoff`` apart and
    doubling (at most 60 s). A book that is already flat sends no order at all, so a re-run for the same session
    changes nothing. Anything still open after the last read-back opens an incident at
    ``trading_day.positions.severity`` naming each symbol and quantity (key ``positions:<session date>``: one per
    session, a re-run adds an occurrence), and the task fails without retrying (``AirflowFailException``: the book
    was read ``attempts`` times already; an unreachable platform is still retried): the run never reports success
    with a position open, and nothing downstream scales agents down.

    The Idempotency-Key is ``close-all:<session date>:<run id>:try<n>``. Within one try the platform client's
    transport retries reuse it, so an answer lost on the network never submits the order twice. A new try, a
    cleared task or a new run gets a new key on purpose: a key per session alone would make the platform replay
    the first answer (``rejected: ES``) after someone has fixed what blocked the close, and nothing would be closed.
    A fresh key cannot double a position: close-all flattens what is open when it arrives (no fixed quantities),
    and a flat book is never sent an order.

    Returns ``{session_date, closed, orders, rejected, attempts}``.

    :param reason: the reason recorded with the close-all order on the platform. (templated)
    :param platform_conn_id: the platform API's Airflow connection; default: the config's ``connections.platform_api``.
    """

    template_fields: Sequence[str] = ("reason",)
    ui_color = "#fbe3d6"

    def __init__(
        self, *, reason: str = "end of day close-out", platform_conn_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.reason = reason
        self.platform_conn_id = platform_conn_id

    def hook(self, conn_id: str) -> TradingPlatformHook:
        from tradeops.platform.hooks import TradingPlatformHook

        return TradingPlatformHook(conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.calendar.sessions import sessions_for
        from tradeops.config import load_config
        from tradeops.daily.report import closed_session

        config = load_config()
        settings = config.trading_day.positions
        ti = context["ti"]
        session = closed_session(sessions_for(config.platform.exchange), context["dag_run"].run_after)
        day = session.day.isoformat()
        platform = self.hook(self.platform_conn_id or config.connections.platform_api)

        book = platform.get("/v1/positions")["positions"]
        answer: dict[str, Any] = {"orders": [], "closed": 0, "rejected": []}
        if book:
            key = close_all_key(day, ti.run_id, ti.try_number)
            self.log.info("Closing %d position(s) of %s (%s): %s", len(book), day, key, describe(book))
            answer = platform.request(
                "POST", "/v1/positions/close-all", json={"reason": self.reason}, idempotency_key=key
            )
            if answer.get("rejected"):
                self.log.warning("The platform rejected closing: %s", describe(answer["rejected"]))
        else:
            self.log.info("No open position for %s: nothing to close", day)

        still_open = book
        delays = read_back_delays(settings.attempts, settings.backoff) if book else []
        for attempt, delay in enumerate(delays, start=1):
            time.sleep(delay)
            still_open = platform.get("/v1/positions")["positions"]
            if not still_open:
                break
            self.log.warning("Read-back %d/%d: still open: %s", attempt, len(delays), describe(still_open))
        if still_open:
            still_open = [{"symbol": p["symbol"], "qty": p["qty"]} for p in still_open]
            ti.xcom_push(key=STILL_OPEN_KEY, value=still_open)
            self.escalate(context, day, still_open, settings.severity, len(delays))
            raise PositionsLeftOpen(
                f"{len(still_open)} position(s) still open after {len(delays)} read-backs: {describe(still_open)}"
            )
        self.log.info("The book of %s is flat: %d closed", day, answer["closed"])
        return {
            "session_date": day,
            "closed": answer["closed"],
            "orders": answer["orders"],
            "rejected": answer.get("rejected", []),
            "attempts": len(delays),
        }

    def escalate(
        self, context: Context, day: str, still_open: list[dict[str, Any]], severity: str, attempts: int
    ) -> None:
        """Open (or add an occurrence to) the session's open-positions incident."""
        from tradeops.incidents.models import IncidentSource, NewIncident
        from tradeops.incidents.service import IncidentService

        ti = context["ti"]
        opened = IncidentService().open(
            NewIncident(
                dedup_key=f"positions:{day}",
                source=IncidentSource.TASK_FAILURE,
                severity=severity,
                title=f"{len(still_open)} position(s) still open after the {day} close-out",
                summary=(
                    f"close-all did not flatten the book; after {attempts} read-backs still open: "
                    f"{describe(still_open)}. Close them by hand, then re-run `{ti.task_id}`."
                ),
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                task_id=ti.task_id,
                details={"session_date": day, "still_open": still_open},
            )
        )
        self.log.error(
            "Incident #%s (%s, %s) %s",
            opened.incident.id,
            severity,
            opened.incident.dedup_key,
            "opened" if opened.created else "updated",
        )
