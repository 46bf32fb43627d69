"""``MarketHoursSensor``: wait for the market (until it opens, until today's session closes, or until
"open − 60 min"), deferring to the triggerer so no worker slot is held while waiting."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

if TYPE_CHECKING:
    from airflow.sdk import Context


class MarketHoursSensor(BaseSensorOperator):
    """Wait until ``until`` (``"open"`` or ``"close"``) ``+ offset`` of the current session of ``exchange``.

    The current session is today's (the exchange's local date). Waiting for the open once today's session has
    closed waits for the next session. On a day without a session (weekend, holiday) ``on_non_trading_day``
    decides: ``"skip"`` (the task and what follows are skipped) or ``"next_session"`` (wait for the next one).

    - ``until="open"``: until the market is open (returns at once while it is);
    - ``until="close"``: until today's session has closed (early closes included);
    - ``until="open", offset="-60m"``: until an hour before the open.

    Deferrable by default: the task hands the wait to :class:`MarketBoundaryTrigger` and the trigger ends the
    task at the boundary. ``deferrable=False`` pokes instead (``mode``/``poke_interval`` as any sensor).

    :param until: ``"open"`` or ``"close"`` of the current session. (templated)
    :param offset: added to the boundary, a ``timedelta`` or duration text (``"-60m"``, ``"{{ params.offset }}"``).
        (templated)
    :param exchange: the exchange's calendar (``XNYS``).
    :param on_non_trading_day: ``"skip"`` or ``"next_session"`` on a day without a session.
    :param deferrable: wait in the triggerer (default) rather than in a worker.
    """

    template_fields: Sequence[str] = ("until", "offset")
    ui_color = "#dbe8f7"

    def __init__(
        self,
        *,
        until: Literal["open", "close"] = "open",
        offset: timedelta | str = timedelta(0),
        exchange: str = "XNYS",
        on_non_trading_day: Literal["skip", "next_session"] = "skip",
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_non_trading_day not in ("skip", "next_session"):
            raise ValueError(f"on_non_trading_day must be 'skip' or 'next_session', got {on_non_trading_day!r}")
        self.until = until
        self.offset = offset
        self.exchange = exchange
        self.on_non_trading_day = on_non_trading_day
        self.deferrable = deferrable

    def target(self, now: datetime) -> datetime:
        """The boundary to wait for, seen from ``now``; raises skip/fail for holidays and out-of-range dates."""
        from tradeops.calendar.sessions import sessions_for
        from tradeops.config.durations import parse_duration
        from tradeops.exceptions import OutsideCalendarError

        if self.until not in ("open", "close"):
            raise AirflowFailException(f"until must be 'open' or 'close', got {self.until!r}")
        offset = parse_duration(self.offset)
        try:
            table = sessions_for(self.exchange)
            today = now.astimezone(ZoneInfo(table.tz)).date()
            session = table.session_on(today)
            if session is None:
                if self.on_non_trading_day == "skip":
                    raise AirflowSkipException(f"{today} is not an {self.exchange} trading day (weekend or holiday)")
                session = table.next_session(today)
            elif self.until == "open" and now >= session.close:
                session = table.next_session(today + timedelta(days=1))
        except OutsideCalendarError as err:
            raise AirflowFailException(str(err)) from None
        return session.at(self.until) + offset

    def poke(self, context: Context) -> bool:
        now = datetime.now(UTC)
        target = self.target(now)
        self.log.info(
            "Waiting until %s (%s %s %s); now %s",
            target.isoformat(),
            self.exchange,
            self.until,
            self.offset,
            now.isoformat(),
        )
        return now >= target

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from tradeops.calendar.triggers import MarketBoundaryTrigger

        now = datetime.now(UTC)
        target = self.target(now)
        if now >= target:
            self.log.info("Already past %s (%s %s %s)", target.isoformat(), self.exchange, self.until, self.offset)
            return {"boundary": target.isoformat(), "fired_at": now.isoformat(), "deferred": False}
        self.log.info("Deferring until %s (%s from now)", target.isoformat(), target - now)
        self.defer(
            trigger=MarketBoundaryTrigger(
                target, label=f"{self.exchange} {self.until} {self.offset}", end_from_trigger=True
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        return event
