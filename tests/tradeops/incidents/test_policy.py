"""The escalation policy on a frozen clock, with the production matrix from tradeops.yaml: L1 on-call engineer at
once, L2 operations manager after the initial response time, L3 and L4 each one escalation time later, then the
ladder once more (repeat: 1), status updates every 15 minutes, stale acknowledgements after 60 minutes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tradeops.incidents.models import IncidentStatus
from tradeops.incidents.policy import Action, ActionKind, EscalationPolicy, IncidentState

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)

# Hand-written from the seed's matrix (initial response / escalation): the minute each (loop, level) is paged.
PAGED_AT_MINUTE = {
    "P1": [0, 5, 20, 35, 50, 55, 70, 85],  # 5/15 min; the second cycle starts 15 min after L4
    "P2": [0, 15, 45, 75, 105, 120, 150, 180],  # 15/30
    "P3": [0, 30, 90, 150, 210, 240, 300, 360],  # 30/60
    "P4": [0, 60, 180, 300, 420, 480, 600, 720],  # 60/120
    "security": [0, 2, 12, 22, 32, 34, 44, 54],  # 2/10, security team first
}


@pytest.fixture
def policy(config) -> EscalationPolicy:
    return EscalationPolicy(config.escalation)


def opened(severity: str, at: datetime = T0) -> IncidentState:
    return IncidentState(
        severity=severity, status=IncidentStatus.OPEN, level=0, loop=0, escalation_anchor=at, last_update_at=at
    )


def run_clock(
    policy: EscalationPolicy,
    state: IncidentState,
    start: datetime,
    minutes: int,
    events: dict[int, callable] | None = None,
):
    """Tick minute by minute as the engine would, acting on what is due; returns the final state and, per minute,
    the actions taken."""
    taken: dict[int, list[Action]] = {}
    for minute in range(minutes + 1):
        now = start + timedelta(minutes=minute)
        if events and minute in events:
            state = events[minute](state, now)
        while actions := policy.due(state, now):
            for action in actions:
                state = policy.apply(state, action, now)
            taken.setdefault(minute, []).extend(actions)
    return state, taken


def pages(taken: dict[int, list[Action]]) -> list[tuple[int, int, int]]:
    return [(minute, a.level, a.loop) for minute, actions in taken.items() for a in actions if a.kind == "page"]


@pytest.mark.parametrize("severity", list(PAGED_AT_MINUTE))
def test_the_level_reached_at_each_minute(policy, severity):
    expected_minutes = PAGED_AT_MINUTE[severity]
    horizon = expected_minutes[-1] + 60
    _, taken = run_clock(policy, opened(severity), T0, horizon)

    assert pages(taken) == [(minute, (i % 4) + 1, i // 4) for i, minute in enumerate(expected_minutes)]
    # And as a level-per-minute table, which is what the on-call rota reads.
    level = 0
    timeline = {m: (i % 4) + 1 for i, m in enumerate(expected_minutes)}
    for minute in range(horizon + 1):
        level = timeline.get(minute, level)
        reached = [lvl for m, lvl, _ in pages(taken) if m <= minute][-1]
        assert reached == level, f"{severity} at minute {minute}"


def test_level_one_targets_and_the_security_team_first(policy):
    assert policy.targets("P1", 1) == ["#trading-alerts", "@oncall-primary"]
    assert policy.targets("P1", 2) == ["#ops-management", "@ops-manager"]
    assert policy.targets("P1", 4) == ["#exec-escalations", "@ceo", "@risk-management"]
    assert policy.targets("security", 1) == ["#security-incidents", "@security-team"]
    assert policy.targets("security", 2) == ["#ops-management", "@ops-manager"]
    assert policy.level_name(3) == "CTO and trading desk"


def test_an_acknowledgement_stops_escalation(policy):
    def acknowledge(state, now):
        return replace(state, status=IncidentStatus.ACKNOWLEDGED, acknowledged_at=now)

    state, taken = run_clock(policy, opened("P1"), T0, 59, events={3: acknowledge})

    assert pages(taken) == [(0, 1, 0)]
    assert state.level == 1 and state.status == "acknowledged"
    # Still acknowledged and unresolved: status updates in the thread every 15 minutes, nothing else.
    assert [(m, a.kind) for m, actions in taken.items() for a in actions if a.kind != "page"] == [
        (15, "status_update"),
        (30, "status_update"),
        (45, "status_update"),
    ]


def test_a_stale_acknowledgement_refires_the_current_level_and_the_ladder_goes_on(policy):
    def acknowledge(state, now):
        return replace(state, status=IncidentStatus.ACKNOWLEDGED, acknowledged_at=now)

    # P1 reaches L2 at minute 5, is acknowledged at minute 7, and nobody resolves it within the 60 min timeout.
    state, taken = run_clock(policy, opened("P1"), T0, 7 + 60 + 20, events={7: acknowledge})

    kinds = [(m, a.kind, a.level) for m, actions in taken.items() for a in actions if a.kind != "status_update"]
    assert kinds == [(0, "page", 1), (5, "page", 2), (67, "stale_ack", 2), (82, "page", 3)]
    assert state.status == "open" and state.acknowledged_at is None and state.level == 3


def test_the_ladder_repeats_after_the_last_level_then_only_status_updates(policy):
    state, taken = run_clock(policy, opened("P1"), T0, 200)

    assert [(lvl, loop) for _, lvl, loop in pages(taken)] == [
        (1, 0),
        (2, 0),
        (3, 0),
        (4, 0),
        (1, 1),
        (2, 1),
        (3, 1),
        (4, 1),
    ]
    assert state.level == 4 and state.loop == 1
    after_last = [(m, a.kind) for m, actions in taken.items() for a in actions if m > 85]
    assert after_last == [
        (100, "status_update"),
        (115, "status_update"),
        (130, "status_update"),
        (145, "status_update"),
        (160, "status_update"),
        (175, "status_update"),
        (190, "status_update"),
    ]
    assert policy.next_action_at(state) == T0 + timedelta(minutes=205)


def test_no_repeat_configured_means_one_pass(config):
    policy = EscalationPolicy(config.escalation.model_copy(update={"repeat": 0}))
    _, taken = run_clock(policy, opened("P2"), T0, 300)
    assert pages(taken) == [(0, 1, 0), (15, 2, 0), (45, 3, 0), (75, 4, 0)]


def test_resolve_closes_everything(policy):
    state, _ = run_clock(policy, opened("P1"), T0, 6)
    resolved = replace(state, status=IncidentStatus.RESOLVED)
    assert policy.due(resolved, T0 + timedelta(hours=10)) == []
    assert policy.next_action_at(resolved) is None


def test_next_action_at_is_exactly_when_due_has_something(policy):
    """The engine sleeps until ``next_action_at``: nothing may be due a second earlier, something must be due then."""
    state = opened("P2")
    now = T0
    for _ in range(12):
        actions = policy.due(state, now)
        for action in actions:
            state = policy.apply(state, action, now)
        wake = policy.next_action_at(state)
        assert policy.due(state, wake - timedelta(seconds=1)) == []
        assert policy.due(state, wake) != []
        now = wake


def test_steps_missed_while_the_engine_was_down_are_all_paged_and_marked_late(policy):
    state = policy.apply(opened("P1"), Action(ActionKind.PAGE, 1, 0), T0)
    # Down from minute 1 to minute 40: L2 (5), L3 (20) and L4 (35) all fell due.
    actions = policy.due(state, T0 + timedelta(minutes=40))
    assert [(a.kind, a.level, a.catch_up) for a in actions] == [("page", 2, True), ("page", 3, True), ("page", 4, True)]
    # A step acted on within seconds of its time is on time.
    on_time = policy.due(state, T0 + timedelta(minutes=5, seconds=3))
    assert [(a.level, a.catch_up) for a in on_time] == [(2, False)]


def test_an_incident_opened_during_a_silence_pages_level_one_when_it_ends(policy):
    state = replace(opened("P1"), silenced_until=T0 + timedelta(minutes=30))
    assert policy.due(state, T0 + timedelta(minutes=29)) == []
    assert policy.next_action_at(state) == T0 + timedelta(minutes=30)

    state, taken = run_clock(policy, state, T0, 40)
    assert [(m, a.kind, a.level) for m, actions in taken.items() for a in actions] == [
        (30, "silence_ended", 0),
        (30, "page", 1),
        (35, "page", 2),
    ]
    assert not any(a.catch_up for actions in taken.values() for a in actions)


def test_a_silence_pauses_the_ladder_where_it_stood(policy):
    def silence(state, now):
        return replace(state, silenced_until=now + timedelta(minutes=60))

    # P1 at L2 (minute 5), silenced at minute 10 for an hour: L3 comes 15 min after the silence, not at minute 20.
    state, taken = run_clock(policy, opened("P1"), T0, 90, events={10: silence})
    assert [(m, a.level) for m, actions in taken.items() for a in actions if a.kind == "page"] == [
        (0, 1),
        (5, 2),
        (85, 3),
    ]
    assert [m for m, actions in taken.items() for a in actions if a.kind == "silence_ended"] == [70]
