"""The escalation policy, as pure functions of an incident's state and the clock.

From ``escalation`` in the config: level 1 is paged when the incident opens; level 2 after the severity's
``initial_response`` without an acknowledgement; each further level ``escalate_after`` later; after the last level
the whole ladder starts again from level 1 (``repeat`` times), ``escalate_after`` after the last step. An
acknowledgement stops the ladder; one older than ``acknowledgement_timeout`` without a resolve goes stale and
re-fires the current level, and the ladder goes on from there. A silence holds everything; when it ends, the ladder
resumes from where it stood. While open or acknowledged, a status update goes to
the incident's thread every ``status_update_interval``. Resolved: nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import cast

from tradeops.config.model import Escalation, Severity, SeverityPolicy
from tradeops.incidents.models import IncidentStatus

CATCH_UP_AFTER = timedelta(seconds=30)  # a page this late says so ("overdue while TradeOps was not running")


class ActionKind(StrEnum):
    PAGE = "page"  # a level (level 1 when the incident opens, and again when the ladder starts over)
    STALE_ACK = "stale_ack"  # an acknowledgement went stale: re-fire the current level
    STATUS_UPDATE = "status_update"
    SILENCE_ENDED = "silence_ended"


@dataclass(frozen=True)
class Step:
    after: timedelta  # since the escalation anchor (level 1 of the first cycle)
    level: int
    loop: int


@dataclass(frozen=True)
class IncidentState:
    """The fields of an incident the policy reads (and, through :class:`Action`, changes)."""

    severity: str
    status: IncidentStatus
    level: int  # last level notified; 0 before the first page
    loop: int
    escalation_anchor: datetime
    last_update_at: datetime
    acknowledged_at: datetime | None = None
    silenced_until: datetime | None = None


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    level: int = 0
    loop: int = 0
    catch_up: bool = False  # a step that fell due while nothing was running (restart, outage)


class EscalationPolicy:
    def __init__(self, escalation: Escalation):
        self.escalation = escalation
        self.levels = sorted(escalation.levels, key=lambda level: level.level)

    def severity(self, severity: str) -> SeverityPolicy:
        policies = self.escalation.severities
        return policies.get(cast(Severity, severity)) or policies.get("P3") or next(iter(policies.values()))

    def steps(self, severity: str) -> list[Step]:
        policy = self.severity(severity)
        ladder = [timedelta(0)] + [
            policy.initial_response + (n - 2) * policy.escalate_after for n in range(2, len(self.levels) + 1)
        ]
        cycle = ladder[-1] + policy.escalate_after
        return [
            Step(loop * cycle + offset, index + 1, loop)
            for loop in range(self.escalation.repeat + 1)
            for index, offset in enumerate(ladder)
        ]

    def targets(self, severity: str, level: int) -> list[str]:
        policy = self.severity(severity)
        if level == 1 and policy.first_targets:
            return list(policy.first_targets)
        return list(self.levels[level - 1].targets)

    def level_name(self, level: int) -> str:
        return self.levels[level - 1].name

    def offset(self, severity: str, level: int, loop: int) -> timedelta:
        return next(s.after for s in self.steps(severity) if (s.level, s.loop) == (level, loop))

    # --- what to do now, and when to look again ---------------------------------------------------------------

    def due(self, state: IncidentState, now: datetime) -> list[Action]:
        if state.status == IncidentStatus.RESOLVED or (state.silenced_until and now < state.silenced_until):
            return []
        if state.silenced_until:
            return [Action(ActionKind.SILENCE_ENDED, state.level, state.loop)]
        actions = []
        if state.status == IncidentStatus.ACKNOWLEDGED:
            if state.acknowledged_at and now - state.acknowledged_at >= self.escalation.acknowledgement_timeout:
                actions.append(Action(ActionKind.STALE_ACK, max(state.level, 1), state.loop))
        else:
            pending = [
                s
                for s in self.steps(state.severity)
                if (s.loop, s.level) > (state.loop, state.level) and state.escalation_anchor + s.after <= now
            ]
            # Steps that fell due together (the engine was down) are all paged, marked as late, so that nobody
            # on the way up is skipped; a whole missed cycle is not replayed, only the latest one.
            for step in (s for s in pending if s.loop == pending[-1].loop):
                late = now - (state.escalation_anchor + step.after) > CATCH_UP_AFTER
                actions.append(Action(ActionKind.PAGE, step.level, step.loop, catch_up=late))
        if not actions and state.level and now - state.last_update_at >= self.escalation.status_update_interval:
            actions.append(Action(ActionKind.STATUS_UPDATE, state.level, state.loop))
        return actions

    def next_action_at(self, state: IncidentState) -> datetime | None:
        """When :meth:`due` will next have something to do (nothing happens while a silence lasts)."""
        if state.status == IncidentStatus.RESOLVED:
            return None
        candidates = []
        if state.status == IncidentStatus.ACKNOWLEDGED and state.acknowledged_at:
            candidates.append(state.acknowledged_at + self.escalation.acknowledgement_timeout)
        elif state.status == IncidentStatus.OPEN:
            upcoming = [s for s in self.steps(state.severity) if (s.loop, s.level) > (state.loop, state.level)]
            if upcoming:
                candidates.append(state.escalation_anchor + upcoming[0].after)
        if state.level:
            candidates.append(state.last_update_at + self.escalation.status_update_interval)
        if not candidates:
            return None
        return max(min(candidates), state.silenced_until) if state.silenced_until else min(candidates)

    def apply(self, state: IncidentState, action: Action, now: datetime) -> IncidentState:
        """The state after ``action`` was carried out at ``now``."""
        if action.kind == ActionKind.PAGE:
            return replace(state, level=action.level, loop=action.loop, last_update_at=now)
        if action.kind == ActionKind.STALE_ACK:
            # The ladder goes on from the current level as if it had just been reached.
            anchor = now - self.offset(state.severity, action.level, action.loop)
            return replace(
                state, status=IncidentStatus.OPEN, acknowledged_at=None, escalation_anchor=anchor, last_update_at=now
            )
        if action.kind == ActionKind.SILENCE_ENDED:
            # The ladder resumes where it stood, the next level a full wait after the silence (an incident opened
            # during the silence pages level 1 now).
            resumed = state.silenced_until or now
            anchor = resumed - self.offset(state.severity, action.level, action.loop) if action.level else resumed
            return replace(state, silenced_until=None, escalation_anchor=anchor)
        if action.kind == ActionKind.STATUS_UPDATE:
            return replace(state, last_update_at=now)
        raise ValueError(action.kind)
