"""The escalation engine: carry out what the policy says is due, as Slack messages queued in the outbox (delivered by
:class:`~tradeops.incidents.outbox.SlackOutbox`).

Safe to run from several places at once (the opener of an incident, two overlapping engine windows, a restarted
triggerer): incidents are taken with ``FOR UPDATE SKIP LOCKED``, so nothing is paged twice. Everything the engine
does is recorded in the incident's audit trail.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tradeops.incidents import messages, store
from tradeops.incidents.models import EventKind, Incident, IncidentStatus, OutboxKind
from tradeops.incidents.policy import Action, ActionKind, EscalationPolicy, IncidentState
from tradeops.incidents.runbook import war_room_name

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig


def _state(incident: Incident) -> IncidentState:
    return IncidentState(
        severity=incident.severity,
        status=incident.status,
        level=incident.level,
        loop=incident.loop,
        escalation_anchor=incident.escalation_anchor,
        last_update_at=incident.last_update_at,
        acknowledged_at=incident.acknowledged_at,
        silenced_until=incident.silenced_until,
    )


class EscalationEngine:
    """Carries out the escalation policy for the incidents of the state database ``dsn``."""

    def __init__(self, config: TradeOpsConfig, dsn: str):
        self.config = config
        self.dsn = dsn
        self.policy = EscalationPolicy(config.escalation)

    # --- links and rendering ----------------------------------------------------------------------------------

    def root_blocks(self, incident: Incident) -> list[dict[str, Any]]:
        from tradeops.reporting.links import incident_links

        level = max(incident.level, 1)
        links = incident_links(self.config, incident)
        line = messages.level_line(level, self.policy.level_name(level), self.policy.targets(incident.severity, level))
        return messages.incident_blocks(
            incident,
            level_line=line,
            run_url=links.run,
            runbook_url=links.runbook,
            with_buttons=incident.status != IncidentStatus.RESOLVED,
        )

    # --- acting on incidents ----------------------------------------------------------------------------------

    def process(self, conn: store.Connection, incident: Incident, now: datetime) -> list[Action]:
        """Carry out what is due for one (locked) incident and schedule its next look."""
        state = _state(incident)
        done: list[Action] = []
        while actions := self.policy.due(state, now):  # one change (a silence ending) can make more due
            for action in actions:
                self._carry_out(conn, incident, action, now)
                state = self.policy.apply(state, action, now)
                incident = replace(incident, level=state.level, loop=state.loop, status=state.status)
            done += actions
        store.update_fields(
            conn,
            incident.id,
            level=state.level,
            loop=state.loop,
            status=state.status.value,
            escalation_anchor=state.escalation_anchor,
            last_update_at=state.last_update_at,
            acknowledged_at=state.acknowledged_at,
            silenced_until=state.silenced_until,
            next_action_at=self.policy.next_action_at(state),
        )
        return done

    def _carry_out(self, conn: store.Connection, incident: Incident, action: Action, now: datetime) -> None:
        if action.kind is ActionKind.PAGE:
            self._page(conn, incident, action, now)
        elif action.kind is ActionKind.STALE_ACK:
            text = (
                f":warning: The acknowledgement of #{incident.id} by {incident.acknowledged_by} went stale (no "
                f"resolve within {self.config.escalation.acknowledgement_timeout}): paging "
                f"L{action.level} again"
            )
            store.enqueue(conn, incident.id, OutboxKind.THREAD_REPLY, "", text, in_thread=True, level=action.level)
            reopened = self.root_blocks(replace(incident, status=IncidentStatus.OPEN))
            for channel in [t for t in self.policy.targets(incident.severity, action.level) if t.startswith("#")]:
                store.enqueue(conn, incident.id, OutboxKind.ESCALATION, channel, text, reopened, level=action.level)
            store.event(
                conn,
                incident.id,
                EventKind.ACK_STALE,
                level=action.level,
                detail={"acknowledged_by": incident.acknowledged_by},
            )
        elif action.kind is ActionKind.SILENCE_ENDED:
            store.event(conn, incident.id, EventKind.SILENCE_ENDED, level=action.level)
        elif action.kind is ActionKind.STATUS_UPDATE:
            text = messages.status_text(incident, self.policy.level_name(max(incident.level, 1)), now)
            if progress := messages.runbook_progress(store.timeline(conn, incident.id), now):
                text += "\n" + progress
            store.enqueue(conn, incident.id, OutboxKind.THREAD_REPLY, "", text, in_thread=True, level=incident.level)
            store.event(conn, incident.id, EventKind.STATUS_UPDATE, level=incident.level)

    def _page(self, conn: store.Connection, incident: Incident, action: Action, now: datetime) -> None:
        """Page a level: the incident's first message (and war room) at level 1, else an escalation."""
        targets = self.policy.targets(incident.severity, action.level)
        channels = [t for t in targets if t.startswith("#")] or [self.config.slack.channels["alerts"]]
        paged = replace(incident, level=action.level)
        blocks = self.root_blocks(paged)
        if action.level == 1 and action.loop == 0 and not incident.slack_ts:
            headline = messages.headline(paged)
            store.enqueue(conn, incident.id, OutboxKind.PAGE, channels[0], headline, blocks, level=1)
            for channel in channels[1:]:
                store.enqueue(conn, incident.id, OutboxKind.ESCALATION, channel, headline, blocks, level=1)
            if self.policy.severity(incident.severity).war_room:
                war_room = war_room_name(self.config.slack.war_room_prefix, now, incident.id)
                store.enqueue(
                    conn, incident.id, OutboxKind.WAR_ROOM, war_room, f"War room for {headline}", blocks, level=1
                )
        else:
            text = messages.escalation_text(
                paged, action.level, self.policy.level_name(action.level), targets, now, action.catch_up
            )
            for channel in channels:
                store.enqueue(conn, incident.id, OutboxKind.ESCALATION, channel, text, blocks, level=action.level)
            store.enqueue(conn, incident.id, OutboxKind.THREAD_REPLY, "", text, in_thread=True, level=action.level)
        if action.level == 1 and action.loop == 0:
            kind = EventKind.PAGED
        else:
            kind = EventKind.REPEATED if action.loop and action.level == 1 else EventKind.ESCALATED
        store.event(
            conn,
            incident.id,
            kind,
            level=action.level,
            detail={"targets": targets, "loop": action.loop, "catch_up": action.catch_up},
        )

    def after_change(self, conn: store.Connection, incident: Incident, actor: str, kind: EventKind) -> None:
        """Tell the thread about an acknowledgement or a resolve, and refresh the first message."""
        verb = {EventKind.ACKNOWLEDGED: ":eyes: Acknowledged", EventKind.RESOLVED: ":white_check_mark: Resolved"}[kind]
        text = f"{verb} by {actor}: {messages.headline(incident)}"
        if kind is EventKind.RESOLVED:
            from tradeops.reporting.links import incident_report_url

            text += f"\nReport: <{incident_report_url(incident.id)}|incident #{incident.id} report>"
        store.enqueue(conn, incident.id, OutboxKind.THREAD_REPLY, "", text, in_thread=True, level=incident.level)
        store.enqueue(
            conn,
            incident.id,
            OutboxKind.UPDATE_ROOT,
            "",
            messages.headline(incident),
            self.root_blocks(incident),
            in_thread=True,
        )

    def process_due(self, now: datetime | None = None) -> int:
        """Act on every incident whose next action is due; returns how many had something done."""
        now = now or datetime.now(UTC)
        done = 0
        with store.connect(self.dsn) as conn, conn.transaction():
            for incident in store.due_incidents(conn, now):
                if self.process(conn, incident, now):
                    done += 1
        return done
