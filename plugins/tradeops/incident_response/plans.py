"""What the critical / system-failure response would change, as plain data (pure: the operators read the state, this
decides): the trading services to 0, every open position closed, the API gateway's Service to ``ClusterIP``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

ISOLATED = "ClusterIP"  # no node port, no load balancer: reachable from inside the cluster only


def response_plan(
    replicas: Mapping[str, int], positions: Sequence[Mapping[str, Any]], gateway: str, gateway_type: str | None
) -> list[dict[str, Any]]:
    """The changes, in the order the runbook makes them; what is already as wanted is left out."""
    plan: list[dict[str, Any]] = [
        {"action": "scale", "target": name, "before": count, "after": 0}
        for name, count in sorted(replicas.items())
        if count
    ]
    plan += [
        {"action": "close", "target": str(p["symbol"]), "before": p["qty"], "after": 0} for p in positions if p["qty"]
    ]
    if gateway_type != ISOLATED:
        plan.append({"action": "isolate", "target": gateway, "before": gateway_type, "after": ISOLATED})
    return plan


def render(plan: Sequence[Mapping[str, Any]]) -> str:
    """One line per change, for the log, Slack and the incident."""
    if not plan:
        return "nothing to change"
    verbs = {
        "scale": "scale {target} {before} → {after}",
        "close": "close {target} ({before})",
        "isolate": "isolate Service {target}: {before} → {after}",
    }
    return "\n".join("• " + verbs[change["action"]].format(**change) for change in plan)
