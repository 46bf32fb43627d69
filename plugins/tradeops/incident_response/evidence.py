"""What the security runbook decides, as plain data (pure: the operators read the state and act, this decides):
who the security page goes to and what it says, the gateway's auth failures kept as evidence, which tokens a
revocation selects, and the plan a dry run lists, in the runbook's order: preserve the evidence, page the security
team, isolate the gateway, stop trading, revoke the tokens."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from tradeops.config import TradeOpsConfig
from tradeops.incident_response.plans import ISOLATED
from tradeops.security.gateway import ACCESS, DENIED

SECURITY_SEVERITY: Literal["security"] = "security"


def security_targets(config: TradeOpsConfig) -> tuple[list[str], list[str]]:
    """The security page's channels (``slack.channels.security``, then the ``#`` first targets of the ``security``
    severity) and the people it mentions (its ``@`` first targets), each once, in the config's order."""
    policy = config.escalation.severities.get(SECURITY_SEVERITY)
    first = list(policy.first_targets or []) if policy else []
    channels = [config.slack.channels["security"], *(t for t in first if t.startswith("#"))]
    return list(dict.fromkeys(channels)), [t for t in first if t.startswith("@")]


def page_text(
    headline: str, bundle: Mapping[str, Any] | None, mentions: Sequence[str], run: str, *, dry_run: bool = False
) -> str:
    """The security page: the incident, its forensic bundle (or that there is none), what follows."""
    lines = [f":shield: *Security response* {' '.join(mentions)}: {headline}".replace("  ", " ")]
    if bundle:
        lines.append(f"Forensic bundle (write-once): {bundle['bundle']} (sha256 {bundle['sha256']})")
    else:
        lines.append("No forensic bundle: the evidence step did not finish (see the run)")
    if dry_run:
        lines.append(f"Dry run: the containment is only planned, nothing changes: {run}")
    else:
        lines.append(f"Containment follows (isolate the gateway, stop trading, revoke tokens): {run}")
    return "\n".join(lines)


def auth_failures(log: str) -> str:
    """The 401/403 answers among a gateway's access-log lines, as they were."""
    return "".join(line + "\n" for line in log.splitlines() if (m := ACCESS.match(line)) and int(m["status"]) in DENIED)


def token_selector(*, scope: str | None, user: str | None, everything: bool) -> dict[str, Any]:
    """The platform's revocation selector: the tokens of ``scope`` and/or ``user`` (literal), or all of them, which
    must be asked for (``everything``) and never follows from naming nothing."""
    named = {k: v for k, v in (("scope", scope), ("user", user)) if v is not None}
    if everything == bool(named):
        raise ValueError("revoke which tokens? a scope and/or a user, or all_tokens=True (alone)")
    for key, value in named.items():
        if not value or any(c in value for c in "*?%"):
            raise ValueError(f"{key} {value!r}: a literal name, never a pattern")
    return {"all": True} if everything else named


def describe(selector: Mapping[str, Any]) -> str:
    """A selector in words, for the log, Slack and the trail."""
    return "every token" if selector.get("all") else " and ".join(f"{k} {v}" for k, v in sorted(selector.items()))


def security_plan(
    *,
    evidence: Sequence[str],
    channels: Sequence[str],
    gateway: str,
    gateway_type: str | None,
    replicas: Mapping[str, int],
    selector: Mapping[str, Any],
    tokens: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """The steps in the order the runbook takes them; a change already made (gateway isolated, a service at 0) is
    left out, the evidence and the page never are."""
    plan: list[dict[str, Any]] = [{"action": "preserve", "target": ", ".join(evidence)}]
    plan.append({"action": "page", "target": ", ".join(channels)})
    if gateway_type != ISOLATED:
        plan.append({"action": "isolate", "target": gateway, "before": gateway_type, "after": ISOLATED})
    plan += [
        {"action": "scale", "target": name, "before": count, "after": 0}
        for name, count in sorted(replicas.items())
        if count
    ]
    plan.append(
        {"action": "revoke", "target": describe(selector), "before": len(tokens), "ids": [t["id"] for t in tokens]}
    )
    return plan


def render(plan: Sequence[Mapping[str, Any]]) -> str:
    """One line per step, for the log, Slack and the incident (token ids, never their values)."""
    verbs = {
        "preserve": "preserve the logs and events of {target}, the incident and its trail (write-once, SHA-256)",
        "page": "page the security team in {target}",
        "isolate": "isolate Service {target}: {before} → {after}",
        "scale": "scale {target} {before} → {after}",
        "revoke": "revoke {before} active token(s) ({target})",
    }
    return "\n".join("• " + verbs[step["action"]].format(**step) for step in plan)
