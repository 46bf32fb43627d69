"""401 and 403 answers in the API gateway's access logs: the last minutes against the previous days' baseline.

Each run stores the answers of every UTC day the gateway's logs hold whole (``tradeops.gateway_auth_daily``,
migration 009), so the history outlives the logs' rotation. The baseline is the median of the daily 401/403 shares
over the previous ``security.gateway.history_days``; until ``min_history_days`` of them are stored (a new gateway, a
new state database) it is the share earlier in the logs just read.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from tradeops.checks.base import Check, CheckResult, Finding, Status

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig
    from tradeops.incidents.store import Connection

ACCESS = re.compile(r"^(?P<ts>\S+)\s.*\baccess\b.*\bstatus=(?P<status>\d{3})\b")
DENIED = (401, 403)
IN_LOG_BASELINE = "earlier in today's logs"

Answer = tuple[datetime, int]  # (time, HTTP status) of one request


@dataclass(frozen=True)
class DailyAnswers:
    """A gateway's answers over one whole UTC day."""

    day: date
    requests: int
    denied: int  # answered 401 or 403

    @property
    def denied_share(self) -> float:
        return self.denied / self.requests


@dataclass(frozen=True)
class AccessLog:
    read_at: datetime
    answers: dict[str, list[Answer]]  # gateway deployment -> each request of its pods' logs
    history: dict[str, list[DailyAnswers]] = field(default_factory=dict)  # gateway -> its stored previous days


def parse_access_lines(text: str) -> list[Answer]:
    out = []
    for line in text.splitlines():
        if match := ACCESS.match(line):
            out.append((datetime.fromisoformat(match["ts"].replace("Z", "+00:00")), int(match["status"])))
    return out


def whole_days(pod_logs: Iterable[list[Answer]], today: date) -> list[DailyAnswers]:
    """The answers per UTC day before ``today``, summed over the pods whose log holds the day whole: a log's first
    day is partly rotated away (or the pod started during it), so it counts for none."""
    tallies: dict[date, list[int]] = {}
    for answers in pod_logs:
        if not answers:
            continue
        first_day = min(at for at, _ in answers).astimezone(UTC).date()
        for at, status in answers:
            day = at.astimezone(UTC).date()
            if first_day < day < today:
                tally = tallies.setdefault(day, [0, 0])
                tally[0] += 1
                tally[1] += status in DENIED
    return [DailyAnswers(day, requests, denied) for day, (requests, denied) in sorted(tallies.items())]


def record_days(conn: Connection, gateway: str, days: list[DailyAnswers]) -> None:
    """Store the gateway's whole days. A day read again replaces its counts only when this reading saw more of it:
    a pod whose log has rotated past the day since leaves it to the pods that still hold it."""
    with conn.cursor() as cursor:
        cursor.executemany(
            """
            INSERT INTO tradeops.gateway_auth_daily (gateway, day, requests, denied) VALUES (%s, %s, %s, %s)
            ON CONFLICT (gateway, day) DO UPDATE SET requests = excluded.requests, denied = excluded.denied
            WHERE excluded.requests > tradeops.gateway_auth_daily.requests
            """,
            [(gateway, d.day, d.requests, d.denied) for d in days],
        )


def stored_days(conn: Connection, gateway: str, today: date, history_days: int) -> list[DailyAnswers]:
    """The gateway's stored days among the ``history_days`` before ``today``, oldest first."""
    rows = conn.execute(
        "SELECT day, requests, denied FROM tradeops.gateway_auth_daily "
        "WHERE gateway = %s AND day >= %s AND day < %s ORDER BY day",
        (gateway, today - timedelta(days=history_days), today),
    )
    return [DailyAnswers(row["day"], row["requests"], row["denied"]) for row in rows]


class GatewayAuthErrors(Check[AccessLog]):
    """The share of 401/403 answers of each gateway (role ``gateway``) over the last ``security.gateway.recent``,
    against its baseline: the median daily share of the previous ``history_days`` (stored by every run from the
    days its logs hold whole), or the share before ``recent`` in the same logs while fewer than
    ``min_history_days`` are stored. ``spike_factor`` times the baseline, with at least ``min_errors`` of them, is a
    finding (credential stuffing, a broken client, a revoked key still in use)."""

    name = "gateway_auth_errors"
    title = "Gateway 401/403 rate"
    dependency = "kubernetes_api"
    action = "Find the clients behind the 401/403 answers (their addresses are in the gateway's access log)."

    def collect(self, config: TradeOpsConfig) -> AccessLog:
        from tradeops.connections import postgres_dsn
        from tradeops.incidents import store
        from tradeops.kubernetes.hooks import KubernetesApiHook

        hook = KubernetesApiHook(config.connections.kubernetes)
        pod_logs: dict[str, list[list[Answer]]] = {}
        for deployment in config.kubernetes.deployments:
            if deployment.role != "gateway":
                continue
            key = f"{deployment.namespace}/{deployment.name}"
            for pod in hook.pods(deployment.namespace, f"app={deployment.name}"):
                text = hook.pod_log(
                    deployment.namespace, pod["metadata"]["name"], deployment.container_name, 50_000, 16_000_000
                )
                pod_logs.setdefault(key, []).append(parse_access_lines(text))
        read_at = datetime.now(UTC)
        history = {}
        with store.connect(postgres_dsn(config.connections.state_db)) as conn:
            for gateway, logs in pod_logs.items():
                record_days(conn, gateway, whole_days(logs, read_at.date()))
                history[gateway] = stored_days(conn, gateway, read_at.date(), config.security.gateway.history_days)
        answers = {gateway: [a for log in logs for a in log] for gateway, logs in pod_logs.items()}
        return AccessLog(read_at, answers, history)

    def evaluate(self, data: AccessLog, config: TradeOpsConfig) -> CheckResult:
        policy = config.security.gateway
        since = data.read_at - policy.recent
        findings, rates = [], []
        for gateway, answers in sorted(data.answers.items()):
            recent = [status for at, status in answers if at >= since]
            denied_now = sum(s in DENIED for s in recent)
            rate_now = denied_now / len(recent) if recent else 0.0
            days = data.history.get(gateway, [])
            baseline: float | None
            if len(days) >= policy.min_history_days:
                kind = f"previous {policy.history_days} days (median)"
                baseline = statistics.median(d.denied_share for d in days)
            else:
                kind = IN_LOG_BASELINE
                before = [status for at, status in answers if at < since]
                baseline = sum(s in DENIED for s in before) / len(before) if before else None
            facts = {
                "gateway": gateway,
                "recent_requests": len(recent),
                "recent_denied": denied_now,
                "recent_pct": round(100 * rate_now, 1),
                "baseline": kind,
                "baseline_pct": None if baseline is None else round(100 * baseline, 1),
                "days_of_history": len(days),
            }
            rates.append(f"{gateway} {facts['recent_pct']} % (baseline {facts['baseline_pct']} %, {kind})")
            spike = (
                baseline is not None
                and denied_now >= policy.min_errors
                and round(rate_now / max(baseline, 0.001), 6) >= policy.spike_factor
            )
            if spike:
                message = (
                    f"{gateway}: {denied_now} of {len(recent)} requests denied (401/403) in the last "
                    f"{policy.recent.total_seconds() / 60:g} min, {facts['recent_pct']} % against "
                    f"{facts['baseline_pct']} % ({kind})"
                )
                findings.append(Finding(f"gateway:auth-errors:{gateway}", Status.FAIL, message, facts))
            else:
                findings.append(Finding(f"gateway:auth-errors:{gateway}", Status.OK, rates[-1], facts))
        failed = [f for f in findings if f.status is Status.FAIL]
        if failed:
            return self.result(Status.FAIL, "; ".join(f.message for f in failed), findings=findings)
        return self.result(
            Status.OK, "401/403 rate within its baseline: " + ("; ".join(rates) or "no gateway"), findings=findings
        )
