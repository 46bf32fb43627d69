"""401 and 403 answers in the API gateway's access logs: the last minutes against the rate before them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from tradeops.checks.base import Check, CheckResult, Finding, Status

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig

ACCESS = re.compile(r"^(?P<ts>\S+)\s.*\baccess\b.*\bstatus=(?P<status>\d{3})\b")


@dataclass(frozen=True)
class AccessLog:
    read_at: datetime
    answers: dict[str, list[tuple[datetime, int]]]  # gateway deployment -> (time, HTTP status) of each request


def parse_access_lines(text: str) -> list[tuple[datetime, int]]:
    out = []
    for line in text.splitlines():
        if match := ACCESS.match(line):
            out.append((datetime.fromisoformat(match["ts"].replace("Z", "+00:00")), int(match["status"])))
    return out


class GatewayAuthErrors(Check[AccessLog]):
    """The share of 401/403 answers of each gateway (role ``gateway``) over the last ``security.gateway.recent``,
    against its share before then in the same logs: ``spike_factor`` times more, with at least ``min_errors`` of
    them, is a finding (credential stuffing, a broken client, a revoked key still in use)."""

    name = "gateway_auth_errors"
    title = "Gateway 401/403 rate"
    dependency = "kubernetes_api"
    action = "Find the clients behind the 401/403 answers (their addresses are in the gateway's access log)."

    def collect(self, config: TradeOpsConfig) -> AccessLog:
        from datetime import UTC

        from tradeops.kubernetes.hooks import KubernetesApiHook

        hook = KubernetesApiHook(config.connections.kubernetes)
        answers: dict[str, list[tuple[datetime, int]]] = {}
        for deployment in config.kubernetes.deployments:
            if deployment.role != "gateway":
                continue
            key = f"{deployment.namespace}/{deployment.name}"
            for pod in hook.pods(deployment.namespace, f"app={deployment.name}"):
                text = hook.pod_log(
                    deployment.namespace, pod["metadata"]["name"], deployment.container_name, 50_000, 16_000_000
                )
                answers.setdefault(key, []).extend(parse_access_lines(text))
        return AccessLog(datetime.now(UTC), answers)

    def evaluate(self, data: AccessLog, config: TradeOpsConfig) -> CheckResult:
        policy = config.security.gateway
        since = data.read_at - policy.recent
        findings, rates = [], []
        for gateway, answers in sorted(data.answers.items()):
            recent = [status for at, status in answers if at >= since]
            before = [status for at, status in answers if at < since]
            denied_now = sum(s in (401, 403) for s in recent)
            rate_now = denied_now / len(recent) if recent else 0.0
            rate_before = sum(s in (401, 403) for s in before) / len(before) if before else None
            facts = {
                "gateway": gateway,
                "recent_requests": len(recent),
                "recent_denied": denied_now,
                "recent_pct": round(100 * rate_now, 1),
                "baseline_pct": None if rate_before is None else round(100 * rate_before, 1),
            }
            rates.append(f"{gateway} {facts['recent_pct']} % (before {facts['baseline_pct']} %)")
            spike = (
                rate_before is not None
                and denied_now >= policy.min_errors
                and round(rate_now / max(rate_before, 0.001), 6) >= policy.spike_factor
            )
            if spike:
                message = (
                    f"{gateway}: {denied_now} of {len(recent)} requests denied (401/403) in the last "
                    f"{policy.recent.total_seconds() / 60:g} min, {facts['recent_pct']} % against "
                    f"{facts['baseline_pct']} %"
                )
                findings.append(Finding(f"gateway:auth-errors:{gateway}", Status.FAIL, message, facts))
            else:
                findings.append(Finding(f"gateway:auth-errors:{gateway}", Status.OK, rates[-1], facts))
        failed = [f for f in findings if f.status is Status.FAIL]
        if failed:
            return self.result(Status.FAIL, "; ".join(f.message for f in failed), findings=findings)
        return self.result(
            Status.OK, "401/403 rate as before: " + ("; ".join(rates) or "no gateway"), findings=findings
        )
