"""The market-hours watch's rules as pure functions: given the rules, what each rule's state was, one reading of
the platform's metrics and the moment it was read, the new states and the transitions (a breach confirmed, a breach
cleared). No clock, no I/O: the trigger reads the metrics and the time, the operator acts on the transitions.

A rule's state is plain JSON (it travels in a trigger's kwargs, so a resumed trigger carries on where it was):
``{"above_since": "<ISO 8601>" | None, "breached": bool}``.

- A reading above the threshold starts the clock (``above_since``, the first reading seen above).
- Once the metric has stayed above for the rule's ``for`` (``now - above_since >= for``; ``for`` 0: at once),
  the breach is confirmed: one ``breach`` transition, and none more while it lasts.
- A reading at or under the threshold stops the clock; if the breach was confirmed, one ``clear`` transition.
- A metric missing from a reading changes nothing (no data is neither a breach nor a recovery).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

TransitionKind = Literal["breach", "clear"]
BREACH: TransitionKind = "breach"
CLEAR: TransitionKind = "clear"


@dataclass(frozen=True)
class Rule:
    """One rule: ``metric`` above ``above`` for ``for_`` confirms a breach, an incident at ``severity``."""

    name: str
    metric: str
    above: float
    for_: timedelta
    severity: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rule:
        return cls(
            data["name"], data["metric"], float(data["above"]), timedelta(seconds=data["for_s"]), data["severity"]
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "metric": self.metric,
            "above": self.above,
            "for_s": self.for_.total_seconds(),
            "severity": self.severity,
        }

    def describe(self) -> str:
        duration = f" for {_duration(self.for_)}" if self.for_ else ""
        return f"{self.metric} > {self.above:g}{duration}"


@dataclass(frozen=True)
class RuleState:
    above_since: datetime | None = None
    breached: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuleState:
        since = data.get("above_since")
        return cls(datetime.fromisoformat(since) if since else None, bool(data.get("breached")))

    def to_json(self) -> dict[str, Any]:
        return {"above_since": self.above_since.isoformat() if self.above_since else None, "breached": self.breached}


@dataclass(frozen=True)
class Transition:
    """A rule's state changed: its breach is confirmed (``breach``) or over (``clear``)."""

    rule: str
    kind: TransitionKind
    metric: str
    value: float
    above: float
    since: datetime | None  # breach: when the metric was first seen above
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "kind": self.kind,
            "metric": self.metric,
            "value": self.value,
            "above": self.above,
            "since": self.since.isoformat() if self.since else None,
            "at": self.at.isoformat(),
        }


def step(rule: Rule, state: RuleState, value: float | None, now: datetime) -> tuple[RuleState, Transition | None]:
    """One rule, one reading (``value`` None: the metric was missing) at ``now``."""
    if value is None:
        return state, None
    if value <= rule.above:
        if state.breached:
            return RuleState(), Transition(rule.name, CLEAR, rule.metric, value, rule.above, state.above_since, now)
        return RuleState(), None
    since = state.above_since or now
    if state.breached or now - since < rule.for_:
        return RuleState(since, state.breached), None
    return RuleState(since, True), Transition(rule.name, BREACH, rule.metric, value, rule.above, since, now)


def evaluate(
    rules: Iterable[Rule], states: Mapping[str, RuleState], metrics: Mapping[str, float], now: datetime
) -> tuple[dict[str, RuleState], list[Transition]]:
    """Every rule over one reading of ``metrics`` at ``now``: the new states (by rule name) and the transitions."""
    new_states: dict[str, RuleState] = {}
    transitions: list[Transition] = []
    for rule in rules:
        value = metrics.get(rule.metric)
        new_states[rule.name], transition = step(
            rule, states.get(rule.name, RuleState()), None if value is None else float(value), now
        )
        if transition is not None:
            transitions.append(transition)
    return new_states, transitions


def next_confirmation(rules: Iterable[Rule], states: Mapping[str, RuleState]) -> datetime | None:
    """The soonest moment a running clock confirms a breach if the metric stays above (None: no clock running)."""
    due = []
    for rule in rules:
        state = states.get(rule.name)
        if state is not None and state.above_since is not None and not state.breached:
            due.append(state.above_since + rule.for_)
    return min(due, default=None)


def states_from_json(data: Mapping[str, Mapping[str, Any]]) -> dict[str, RuleState]:
    return {name: RuleState.from_json(state) for name, state in data.items()}


def states_to_json(states: Mapping[str, RuleState]) -> dict[str, dict[str, Any]]:
    return {name: state.to_json() for name, state in states.items()}


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"
