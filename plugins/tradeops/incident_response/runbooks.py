"""Which runbook answers which incident type, and each runbook's tasks as the report reads them (pure). A runbook is
one task group of ``incident_response``; the critical one keeps its task ids unprefixed (the first runbook: its
``approve`` is named by the automatic starts), the others are prefixed with their group (``performance.scale``).
A new runbook is one more entry here, its group in the DAG file and its type in the form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Runbook:
    """``entry``: the group's first task (the branch picks it); ``steps`` before the changes and ``actions`` the
    changes (a failure in either is named in the outcome); ``gated``: tasks an approval that did not come skips;
    ``plan``: the task whose XCom holds the plan; ``done``/``unapproved``: the outcome in words."""

    group: str
    entry: str
    steps: tuple[str, ...]
    actions: tuple[str, ...]
    gated: tuple[str, ...]
    plan: str
    done: str
    unapproved: str


CRITICAL = Runbook(
    group="critical",
    entry="collect_diagnostics",
    steps=("collect_diagnostics", "notify", "plan", "approve", "lock"),
    actions=("stop_trading", "close_positions", "isolate_gateway"),
    gated=("lock", "stop_trading", "close_positions", "isolate_gateway"),
    plan="plan",
    done="done: trading stopped, positions closed, gateway isolated",
    unapproved="nothing changed",
)
PERFORMANCE = Runbook(
    group="performance",
    entry="performance.diagnostics",
    steps=("performance.diagnostics", "performance.notify", "performance.plan", "performance.approve",
           "performance.lock"),
    actions=("performance.analyze", "performance.scale", "performance.flush_cache"),
    gated=("performance.lock", "performance.scale"),
    plan="performance.plan",
    done="done: statistics refreshed, degraded services scaled within their limits",
    unapproved="statistics refreshed, nothing scaled or flushed",
)  # fmt: skip
SECURITY = Runbook(
    group="security",
    entry="security.preserve_evidence",
    steps=("security.preserve_evidence", "security.page_security", "security.plan", "security.approve",
           "security.lock"),
    actions=("security.isolate_gateway", "security.stop_trading", "security.revoke_tokens"),
    gated=("security.lock", "security.isolate_gateway", "security.stop_trading", "security.revoke_tokens"),
    plan="security.plan",
    done="done: evidence preserved, security paged, gateway isolated, trading stopped, tokens revoked",
    unapproved="evidence preserved and security paged, nothing contained",
)  # fmt: skip
RUNBOOKS: Mapping[str, Runbook] = {
    "critical": CRITICAL,
    "system_failure": CRITICAL,
    "performance": PERFORMANCE,
    "security": SECURITY,
}


def runbook_of(response_type: str | None) -> Runbook:
    """The runbook of an incident type (the critical one when the type is unknown: a refused run has none)."""
    return RUNBOOKS.get(response_type or "", CRITICAL)


def entry_task(response_type: str) -> str:
    """The branch's choice: the first task of the type's runbook."""
    return RUNBOOKS[response_type].entry
