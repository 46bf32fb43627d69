"""The watch's rules with explicit timestamps: a breach is confirmed exactly when its duration is met, once; a
shorter one is nothing; a cleared one resolves; at-once rules confirm on the first reading."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tradeops.config import load_config
from tradeops.watch.rules import (
    BREACH,
    CLEAR,
    Rule,
    RuleState,
    evaluate,
    next_confirmation,
    states_from_json,
    states_to_json,
    step,
)

T0 = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
ERROR_RATE = Rule("error_rate", "error_rate_pct", 1.0, timedelta(minutes=1), "P1")
DRAWDOWN = Rule("drawdown", "drawdown_pct", 5.0, timedelta(0), "P1")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def feed(rule: Rule, readings: list[tuple[float, float | None]], state: RuleState | None = None):
    """Step ``rule`` through ``(seconds after T0, value)`` readings; the final state and every transition."""
    state = state or RuleState()
    transitions = []
    for seconds, value in readings:
        state, transition = step(rule, state, value, at(seconds))
        if transition:
            transitions.append(transition)
    return state, transitions


def test_a_breach_is_confirmed_exactly_when_its_duration_is_met_and_only_once():
    state, transitions = feed(ERROR_RATE, [(0, 0.02), (15, 5.0), (30, 5.0), (74.999, 5.0)])
    assert transitions == [] and state == RuleState(at(15), False)
    state, transitions = feed(ERROR_RATE, [(75, 5.0), (90, 6.0), (105, 5.0)], state)
    [breach] = transitions
    assert (breach.kind, breach.rule, breach.value, breach.since, breach.at) == (
        BREACH,
        "error_rate",
        5.0,
        at(15),
        at(75),
    )
    assert state == RuleState(at(15), True)


def test_a_breach_shorter_than_its_duration_is_nothing():
    state, transitions = feed(ERROR_RATE, [(0, 5.0), (15, 5.0), (30, 5.0), (45, 5.0), (59, 0.5), (75, 5.0), (90, 0.1)])
    assert transitions == []
    assert state == RuleState()


def test_the_threshold_itself_is_not_above_it():
    _, transitions = feed(ERROR_RATE, [(0, 1.0), (60, 1.0), (120, 1.0)])
    assert transitions == []


def test_a_confirmed_breach_that_clears_gives_one_clear_and_a_new_breach_starts_its_clock_again():
    state, transitions = feed(ERROR_RATE, [(0, 5.0), (60, 5.0), (75, 0.3), (90, 0.2), (105, 5.0), (120, 5.0)])
    assert [(t.kind, t.at) for t in transitions] == [(BREACH, at(60)), (CLEAR, at(75))]
    assert transitions[1].value == 0.3
    assert state == RuleState(at(105), False)
    _, transitions = feed(ERROR_RATE, [(165, 5.0)], state)
    assert [(t.kind, t.since) for t in transitions] == [(BREACH, at(105))]


def test_an_at_once_rule_breaches_on_its_first_reading_above():
    state, transitions = feed(DRAWDOWN, [(0, 1.3), (15, 6.2)])
    assert [(t.kind, t.at) for t in transitions] == [(BREACH, at(15))]
    _, transitions = feed(DRAWDOWN, [(30, 7.0), (45, 1.0)], state)
    assert [t.kind for t in transitions] == [CLEAR]


def test_a_missing_metric_neither_breaches_nor_clears():
    state, _ = feed(ERROR_RATE, [(0, 5.0), (60, 5.0)])
    assert state.breached
    assert feed(ERROR_RATE, [(75, None), (90, None)], state) == (state, [])


def test_an_incident_carried_from_an_earlier_watch_is_cleared_not_reopened():
    carried = RuleState(breached=True)
    state, transitions = feed(ERROR_RATE, [(0, 5.0), (120, 5.0)], carried)
    assert transitions == [] and state == RuleState(at(0), True)
    _, transitions = feed(ERROR_RATE, [(0, 0.1)], carried)
    assert [t.kind for t in transitions] == [CLEAR]


def test_evaluate_steps_every_rule_and_next_confirmation_is_the_soonest_running_clock():
    rules = [ERROR_RATE, DRAWDOWN, Rule("cpu", "cpu_pct", 80, timedelta(minutes=5), "P2")]
    states, transitions = evaluate(rules, {}, {"error_rate_pct": 3, "drawdown_pct": 9, "cpu_pct": 90}, at(0))
    assert [t.rule for t in transitions] == ["drawdown"]
    assert next_confirmation(rules, states) == at(60)
    states, transitions = evaluate(rules, states, {"error_rate_pct": 3, "drawdown_pct": 9, "cpu_pct": 90}, at(60))
    assert [t.rule for t in transitions] == ["error_rate"]
    assert next_confirmation(rules, states) == at(300)
    assert states_from_json(states_to_json(states)) == states


def test_the_configured_rules_round_trip_through_json():
    for configured in load_config().market_watch.rules:
        rule = Rule(configured.name, configured.metric, configured.above, configured.for_, configured.severity)
        assert Rule.from_json(rule.to_json()) == rule
    assert ERROR_RATE.describe() == "error_rate_pct > 1 for 1m" and DRAWDOWN.describe() == "drawdown_pct > 5"


def test_two_rules_of_one_name_are_refused(tmp_path):
    import yaml

    from tradeops.config import ConfigError, default_config_path

    data = yaml.safe_load(default_config_path().read_text())
    data["market_watch"]["rules"].append({"name": "cpu", "metric": "cpu_pct", "above": 90})
    path = tmp_path / "tradeops.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match=r"market_watch\.rules\[7\]\.name: duplicate watch rule 'cpu'"):
        load_config(path)
