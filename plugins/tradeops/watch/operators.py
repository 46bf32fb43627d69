"""``MarketHoursWatchOperator``: one task per session that watches the platform's metrics from the open to the close.

It waits in the triggerer (:class:`~tradeops.watch.triggers.MarketWatchTrigger`) and comes back to a worker only
when a rule's state changes: a confirmed breach opens the rule's incident (dedup key ``watch:<rule>``, the rule's
severity), a cleared one resolves it, both through :class:`~tradeops.incidents.service.IncidentService`; then it
defers again with the rules' states. Metrics unreadable for two minutes open ``watch:metrics_unavailable`` (P2),
resolved when they are readable again. At the close it ends successfully.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from tradeops.incidents.mixins import WithIncidentService

if TYPE_CHECKING:
    from airflow.sdk import Context


BLIND_KEY = "watch:metrics_unavailable"
BLIND_AFTER = timedelta(minutes=2)


def watch_key(rule: str) -> str:
    """The dedup key of a rule's incident: one per rule while it is active, across sessions."""
    return f"watch:{rule}"


class MarketHoursWatchOperator(WithIncidentService, BaseOperator):
    """Watch the platform's metrics against ``market_watch.rules`` until the session's close (or for ``minutes``).

    :param minutes: drill/test mode: when above 0, watch that many minutes from now, whatever the market; 0 (the
        default) watches until the close of the session open now, and ends at once when the market is closed.
        (templated)
    :param platform_conn_id: the platform API's connection (default: the config's ``connections.platform_api``).
    :param poll_every: seconds between two readings (default: the config's ``market_watch.poll_every``).

    :return: the watch's window, the incidents it ``opened`` and ``resolved`` (dedup keys), and the rules still
        breached at its end; or ``watched: false`` and why.
    """

    template_fields: Sequence[str] = ("minutes",)
    ui_color = "#e3f2fd"

    def __init__(
        self,
        *,
        minutes: int | str = 0,
        platform_conn_id: str | None = None,
        poll_every: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.minutes = minutes
        self.platform_conn_id = platform_conn_id
        self.poll_every = poll_every

    def execute(self, context: Context) -> Any:
        from tradeops.calendar.sessions import sessions_for
        from tradeops.watch.rules import Rule, RuleState, states_to_json

        config = self.incidents.config
        now = datetime.now(UTC)
        minutes = int(self.minutes or 0)
        if minutes > 0:
            until = now + timedelta(minutes=minutes)
            self.log.info("Drill: watching for %d minute(s), until %s, whatever the market", minutes, until)
        else:
            run_after = context["dag_run"].run_after or now
            session = sessions_for(config.platform.exchange).current_or_next(run_after)
            if not session.open <= now < session.close:
                self.log.info(
                    "The market is closed (%s session %s: %s to %s): nothing to watch",
                    config.platform.exchange,
                    session.day,
                    session.open.isoformat(),
                    session.close.isoformat(),
                )
                return {"watched": False, "reason": "market closed", "next_open": session.open.isoformat()}
            until = session.close
            self.log.info(
                "Watching the %s session of %s until its close, %s", config.platform.exchange, session.day, until
            )
        rules = [Rule(r.name, r.metric, r.above, r.for_, r.severity).to_json() for r in config.market_watch.rules]
        # An incident still active from an earlier watch (yesterday's, or this run's first try) starts as breached:
        # this watch resolves it when the metric reads under, and does not open it a second time.
        active = self.incidents.active_by_key([watch_key(r["name"]) for r in rules] + [BLIND_KEY])
        states = {r["name"]: RuleState(breached=watch_key(r["name"]) in active) for r in rules}
        progress = {
            "rules": rules,
            "from": now.isoformat(),
            "until": until.isoformat(),
            "blind": BLIND_KEY in active,
            "opened": [],
            "resolved": [],
        }
        self._watch(states_to_json(states), progress)

    def _watch(self, states: dict[str, Any], progress: dict[str, Any]) -> None:
        from tradeops.watch.triggers import MarketWatchTrigger

        config = self.incidents.config
        poll_s = self.poll_every or config.market_watch.poll_every.total_seconds()
        self.defer(
            trigger=MarketWatchTrigger(
                rules=progress["rules"],
                states=states,
                until=progress["until"],
                platform_conn_id=self.platform_conn_id or config.connections.platform_api,
                poll_s=poll_s,
                blind=progress["blind"],
                blind_after_s=BLIND_AFTER.total_seconds(),
            ),
            method_name="execute_complete",
            kwargs={"progress": progress},
        )

    def execute_complete(self, context: Context, event: dict[str, Any], progress: dict[str, Any]) -> Any:
        from tradeops.watch.rules import BREACH, Rule

        rules = {r["name"]: Rule.from_json(r) for r in progress["rules"]}
        ti = context["ti"]
        if event["status"] == "blind":
            self._open(
                BLIND_KEY,
                "P2",
                "Market watch: the platform's metrics are unreadable",
                f"No reading of the platform's metrics since {event['since']}: the market-hours rules are not being "
                f"evaluated. Last error: {event['error']}",
                ti,
                {"since": event["since"], "error": event["error"]},
            )
            progress["opened"].append(BLIND_KEY)
            progress["blind"] = True
        elif event["status"] == "changed" and progress["blind"]:
            if self._resolve(BLIND_KEY, "the platform's metrics are readable again"):
                progress["resolved"].append(BLIND_KEY)
            progress["blind"] = False
        for transition in event.get("transitions", []):
            rule, key = rules[transition["rule"]], watch_key(transition["rule"])
            if transition["kind"] == BREACH:
                self._open(
                    key,
                    rule.severity,
                    f"Market watch: {rule.name} breached ({rule.describe()})",
                    f"`{rule.metric}` read {transition['value']:g} (threshold {rule.above:g}), above it since "
                    f"{transition['since']}; confirmed at {transition['at']}.",
                    ti,
                    {**transition, "rule": rule.to_json()},
                )
                progress["opened"].append(key)
            elif self._resolve(key, f"{rule.metric} back to {transition['value']:g} (threshold {rule.above:g})"):
                progress["resolved"].append(key)
        if event["status"] == "closed":
            breached = sorted(name for name, state in event["states"].items() if state["breached"])
            self.log.info("Watch over at %s; still breached: %s", progress["until"], breached or "none")
            return {
                "watched": True,
                "from": progress["from"],
                "until": progress["until"],
                "opened": progress["opened"],
                "resolved": progress["resolved"],
                "breached_at_end": breached,
            }
        self._watch(event["states"], progress)

    def _open(self, key: str, severity: str, title: str, summary: str, ti: Any, details: dict[str, Any]) -> None:
        from tradeops.incidents.models import IncidentSource, NewIncident

        opened = self.incidents.open(
            NewIncident(
                dedup_key=key,
                source=IncidentSource.CHECK,
                severity=severity,
                title=title,
                summary=summary,
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                task_id=ti.task_id,
                details=details,
            )
        )
        self.log.info("%s: incident #%s (%s)", title, opened.incident.id, "new" if opened.created else "already open")

    def _resolve(self, key: str, note: str) -> bool:
        active = self.incidents.active_by_key([key]).get(key)
        if active is None:
            self.log.info("%s: %s (no active incident to resolve)", key, note)
            return False
        from tradeops.exceptions import IncidentError

        try:
            self.incidents.resolve(active.id, actor="market_hours_watch", note=note)
        except IncidentError as refused:  # resolved meanwhile (by a watch beside this one, or a person)
            self.log.info("%s: %s (%s)", key, note, refused)
            return False
        self.log.info("%s: incident #%s resolved: %s", key, active.id, note)
        return True
