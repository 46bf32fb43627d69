"""The escalation engine: carry out what the policy says is due, and deliver the outbox to Slack.

Both steps are safe to run from several places at once (the opener of an incident, two overlapping engine windows,
a restarted triggerer): incidents are taken with ``FOR UPDATE SKIP LOCKED`` and so are outbox messages, so nothing
is paged twice. Everything the engine does is recorded in the incident's audit trail.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from tradeops.config import TradeOpsConfig
from tradeops.incidents import messages, store
from tradeops.incidents.policy import Action, EscalationPolicy, IncidentState

log = logging.getLogger("airflow.task.tradeops.incidents")
MAX_RETRY_DELAY = timedelta(minutes=5)


def _state(row: dict) -> IncidentState:
    return IncidentState(severity=row["severity"], status=row["status"], level=row["level"], loop=row["loop"],
                         escalation_anchor=row["escalation_anchor"], last_update_at=row["last_update_at"],
                         acknowledged_at=row["acknowledged_at"], silenced_until=row["silenced_until"])


class Engine:
    def __init__(self, config: TradeOpsConfig, dsn: str):
        self.config = config
        self.dsn = dsn
        self.policy = EscalationPolicy(config.escalation)
        self._slack = None

    # --- links and rendering ----------------------------------------------------------------------------------

    def _links(self, incident: dict) -> tuple[str | None, str | None]:
        from tradeops.reporting.links import run_url

        run = run_url(incident["dag_id"], incident["run_id"]) if incident["dag_id"] and incident["run_id"] else None
        base = self.config.platform.runbook_base_url.rstrip("/")
        runbook = f"{base}/{incident['dag_id']}" if incident["dag_id"] else f"{base}/incident-response"
        return run, runbook

    def root_blocks(self, incident: dict) -> list[dict]:
        level = max(incident["level"], 1)
        run, runbook = self._links(incident)
        line = messages.level_line(level, self.policy.level_name(level),
                                   self.policy.targets(incident["severity"], level))
        return messages.incident_blocks(incident, level_line=line, run_url=run, runbook_url=runbook,
                                        with_buttons=incident["status"] != "resolved")

    # --- acting on incidents ----------------------------------------------------------------------------------

    def process(self, conn, row: dict, now: datetime) -> list[Action]:
        """Carry out what is due for one (locked) incident and schedule its next look."""
        state = _state(row)
        done: list[Action] = []
        while actions := self.policy.due(state, now):  # one change (a silence ending) can make more due
            for action in actions:
                self._carry_out(conn, row, action, now)
                state = self.policy.apply(state, action, now)
                row.update(level=state.level, loop=state.loop, status=state.status)
            done += actions
        store.update_fields(conn, row["id"], level=state.level, loop=state.loop, status=state.status,
                            escalation_anchor=state.escalation_anchor, last_update_at=state.last_update_at,
                            acknowledged_at=state.acknowledged_at, silenced_until=state.silenced_until,
                            next_action_at=self.policy.next_action_at(state))
        return done

    def _carry_out(self, conn, row: dict, action: Action, now: datetime) -> None:
        severity = row["severity"]
        if action.kind == "page":
            targets = self.policy.targets(severity, action.level)
            name = self.policy.level_name(action.level)
            channels = [t for t in targets if t.startswith("#")] or [self.config.slack.channels["alerts"]]
            row_now = {**row, "level": action.level}
            if action.level == 1 and action.loop == 0 and not row["slack_ts"]:
                store.enqueue(conn, row["id"], "page", channels[0], messages.headline(row_now),
                              self.root_blocks(row_now), level=1)
                for channel in channels[1:]:
                    store.enqueue(conn, row["id"], "escalation", channel, messages.headline(row_now),
                                  self.root_blocks(row_now), level=1)
                if self.policy.severity(severity).war_room:
                    day = now.strftime("%Y%m%d")
                    store.enqueue(conn, row["id"], "war_room", f"{self.config.slack.war_room_prefix}{day}-{row['id']}",
                                  f"War room for {messages.headline(row_now)}", self.root_blocks(row_now), level=1)
            else:
                text = messages.escalation_text(row_now, action.level, name, targets, now, action.catch_up)
                for channel in channels:
                    store.enqueue(conn, row["id"], "escalation", channel, text, self.root_blocks(row_now),
                                  level=action.level)
                store.enqueue(conn, row["id"], "thread_reply", "", text, in_thread=True, level=action.level)
            kind = "paged" if action.level == 1 and action.loop == 0 else (
                "repeated" if action.loop and action.level == 1 else "escalated")
            store.event(conn, row["id"], kind, level=action.level,
                        detail={"targets": targets, "loop": action.loop, "catch_up": action.catch_up})
        elif action.kind == "stale_ack":
            text = (f":warning: The acknowledgement of #{row['id']} by {row['acknowledged_by']} went stale (no "
                    f"resolve within {self.config.escalation.acknowledgement_timeout}): paging "
                    f"L{action.level} again")
            store.enqueue(conn, row["id"], "thread_reply", "", text, in_thread=True, level=action.level)
            for channel in [t for t in self.policy.targets(severity, action.level) if t.startswith("#")]:
                store.enqueue(conn, row["id"], "escalation", channel, text, self.root_blocks({**row, "status": "open"}),
                              level=action.level)
            store.event(conn, row["id"], "ack_stale", level=action.level,
                        detail={"acknowledged_by": row["acknowledged_by"]})
        elif action.kind == "silence_ended":
            store.event(conn, row["id"], "silence_ended", level=action.level)
        elif action.kind == "status_update":
            text = messages.status_text(row, self.policy.level_name(max(row["level"], 1)), now)
            store.enqueue(conn, row["id"], "thread_reply", "", text, in_thread=True, level=row["level"])
            store.event(conn, row["id"], "status_update", level=row["level"])

    def after_change(self, conn, row: dict, actor: str, kind: str) -> None:
        """Tell the thread about an acknowledgement or a resolve, and refresh the first message."""
        verb = {"acknowledged": ":eyes: Acknowledged", "resolved": ":white_check_mark: Resolved"}[kind]
        store.enqueue(conn, row["id"], "thread_reply", "", f"{verb} by {actor}: {messages.headline(row)}",
                      in_thread=True, level=row["level"])
        store.enqueue(conn, row["id"], "update_root", "", messages.headline(row), self.root_blocks(row),
                      in_thread=True)

    def process_due(self, now: datetime | None = None) -> int:
        now = now or datetime.now(UTC)
        done = 0
        with store.connect(self.dsn) as conn:
            with conn.transaction():
                for row in store.due_incidents(conn, now):
                    if self.process(conn, row, now):
                        done += 1
        return done

    # --- Slack delivery ---------------------------------------------------------------------------------------

    @property
    def slack(self):
        if self._slack is None:
            from tradeops.slack.client import SlackClient

            self._slack = SlackClient(self.config.connections.slack_api)
        return self._slack

    def deliver(self, limit: int = 50) -> int:
        """Send what the outbox holds, oldest first; a failure is kept for a later attempt with backoff."""
        from slack_sdk.errors import SlackApiError

        sent = 0
        with store.connect(self.dsn) as conn:
            with conn.transaction():
                rows = conn.execute(
                    "SELECT o.*, i.slack_channel AS root_channel, i.slack_ts AS root_ts, "
                    "(SELECT p.channel FROM tradeops.outbox p WHERE p.incident_id = o.incident_id AND p.kind = 'page' "
                    " ORDER BY p.id LIMIT 1) AS root_channel_name FROM tradeops.outbox o "
                    "JOIN tradeops.incidents i ON i.id = o.incident_id "
                    "WHERE o.delivered_at IS NULL AND o.next_attempt_at <= now() "
                    "ORDER BY o.id LIMIT %s FOR UPDATE OF o SKIP LOCKED", (limit,)).fetchall()
                waiting_for_root: set[int] = set()
                for row in rows:
                    if row["in_thread"] and not row["root_ts"] or row["incident_id"] in waiting_for_root:
                        waiting_for_root.add(row["incident_id"])
                        continue  # the first message must go out first
                    try:
                        posted = self._send(conn, row)
                    except (SlackApiError, OSError) as err:
                        reason = getattr(getattr(err, "response", None), "get", lambda *_: None)("error") or str(err)
                        delay = min(timedelta(seconds=2 ** min(row["attempts"], 8)), MAX_RETRY_DELAY)
                        conn.execute("UPDATE tradeops.outbox SET attempts = attempts + 1, next_attempt_at = now() + %s,"
                                     " last_error = %s WHERE id = %s", (delay, reason[:500], row["id"]))
                        store.event(conn, row["incident_id"], "delivery_failed", level=row["level"],
                                    detail={"kind": row["kind"], "channel": row["channel"], "error": reason[:500],
                                            "attempt": row["attempts"] + 1, "retry_in_s": delay.total_seconds()})
                        log.warning("Slack delivery of outbox %s failed (%s); retrying in %s", row["id"], reason, delay)
                        if row["kind"] == "page":
                            waiting_for_root.add(row["incident_id"])
                        continue
                    conn.execute("UPDATE tradeops.outbox SET delivered_at = now(), slack_ts = %s, "
                                 "attempts = attempts + 1 WHERE id = %s", (posted.get("ts"), row["id"]))
                    if row["kind"] != "update_root":
                        store.event(conn, row["incident_id"], "notified", level=row["level"],
                                    detail={"kind": row["kind"]}, slack_channel=posted.get("channel_name"),
                                    slack_ts=posted.get("ts"))
                    sent += 1
        return sent

    def _send(self, conn, row: dict) -> dict:
        if row["kind"] == "update_root":
            self.slack.update(row["root_channel"], row["root_ts"], row["text"], row["blocks"])
            return {"ts": row["root_ts"], "channel_name": row["root_channel_name"]}
        if row["in_thread"]:
            posted = self.slack.post(row["root_channel"], row["text"], row["blocks"], thread_ts=row["root_ts"])
            return {**posted, "channel_name": row["root_channel_name"]}
        channel = row["channel"]
        if row["kind"] == "war_room":
            channel = self.slack.create_channel(channel)
            store.update_fields(conn, row["incident_id"], war_room=channel)
        posted = self.slack.post(channel, row["text"], row["blocks"])
        if row["kind"] == "page":
            # The first message is the incident's thread: everything after it replies there.
            store.update_fields(conn, row["incident_id"], slack_channel=posted["channel"], slack_ts=posted["ts"])
        return {**posted, "channel_name": channel}

    def tick(self) -> tuple[int, int]:
        return self.process_due(), self.deliver()

    def next_wakeup(self) -> datetime | None:
        with store.connect(self.dsn) as conn:
            return store.next_wakeup(conn)
