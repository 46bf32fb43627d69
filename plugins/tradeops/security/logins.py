"""Failed logins over the last day, from the platform database's ``login_events`` and the auth service's pod logs:
brute force on one account, one source spraying many accounts, a privileged user arriving from a source new to
them, and a user failing far more often than their own history says they do."""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from tradeops.checks.base import Check, CheckResult, Finding, Status, worst

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig

LOG_LINE = re.compile(r"^(?P<ts>\S+)\s.*\bFAILED_LOGIN\s+user=(?P<user>[\w.@-]+)\s+ip=(?P<ip>[0-9a-fA-F.:]+)")


@dataclass(frozen=True)
class Failure:
    at: datetime
    user: str
    source: str


@dataclass(frozen=True)
class LoginActivity:
    failures: list[Failure]  # in the window, from both sources, each attempt once
    new_privileged_sources: list[tuple[str, str]]  # (user, source) of successful logins new to the user
    daily_failures: dict[str, list[int]] = field(default_factory=dict)  # user -> failures per day of the history


def parse_log_failures(text: str) -> list[Failure]:
    """The ``FAILED_LOGIN`` lines of a pod log read with timestamps (``kubectl logs --timestamps``)."""
    out = []
    for line in text.splitlines():
        match = LOG_LINE.match(line)
        if match:
            moment = datetime.fromisoformat(match["ts"].replace("Z", "+00:00"))
            out.append(Failure(moment, match["user"], match["ip"]))
    return out


class FailedLogins(Check[LoginActivity]):
    """``security.logins``: ``brute_force_failures`` on one account in the window, or one source failing on
    ``spray_accounts`` accounts (both critical); a privileged user's successful login from a source they did not use
    in ``history``; a user whose failures are ``anomaly_factor`` times their own daily median (at least
    ``anomaly_min_failures``). Usernames and addresses only: never a password or token."""

    name = "failed_logins"
    title = "Failed logins"
    dependency = "platform_db"
    action = "Lock the accounts under attack, block the sources named, and confirm new sources with their users."

    def collect(self, config: TradeOpsConfig) -> LoginActivity:
        from tradeops.connections import postgres_dsn
        from tradeops.database.session import connect

        policy = config.security.logins
        with connect(
            postgres_dsn(config.connections.platform_db),
            config.database.maintenance,
            application_name=f"tradeops-check:{self.name}",
        ) as conn:
            failures = [
                Failure(row["occurred_at"], row["username"], str(row["source_ip"]))
                for row in conn.execute(
                    "SELECT occurred_at, username, source_ip FROM login_events "
                    "WHERE NOT success AND occurred_at > now() - %(window)s",
                    {"window": policy.window},
                )
            ]
            new_sources = [
                (row["username"], str(row["source_ip"]))
                for row in conn.execute(
                    """
                    SELECT DISTINCT e.username, e.source_ip FROM login_events e JOIN users u USING (username)
                    WHERE e.success AND e.occurred_at > now() - %(window)s AND u.role = ANY(%(roles)s)
                      AND NOT EXISTS (
                          SELECT 1 FROM login_events h
                          WHERE h.username = e.username AND h.source_ip = e.source_ip AND h.success
                            AND h.occurred_at BETWEEN now() - %(window)s - %(history)s AND now() - %(window)s)
                    """,
                    {"window": policy.window, "history": policy.history, "roles": policy.privileged_roles},
                )
            ]
            daily: dict[str, list[int]] = {}
            for row in conn.execute(
                """
                SELECT username, date_trunc('day', occurred_at) AS day, count(*) AS n FROM login_events
                WHERE NOT success AND occurred_at BETWEEN now() - %(window)s - %(history)s AND now() - %(window)s
                GROUP BY 1, 2
                """,
                {"window": policy.window, "history": policy.history},
            ):
                daily.setdefault(row["username"], []).append(row["n"])
        failures += self._from_auth_logs(config)
        return LoginActivity(sorted(set(failures), key=lambda f: f.at), sorted(new_sources), daily)

    def _from_auth_logs(self, config: TradeOpsConfig) -> list[Failure]:
        from datetime import UTC
        from datetime import datetime as dt

        from tradeops.kubernetes.hooks import KubernetesApiHook

        hook = KubernetesApiHook(config.connections.kubernetes)
        since = dt.now(UTC) - config.security.logins.window
        out = []
        for deployment in config.kubernetes.deployments:
            if deployment.role != "security":
                continue
            for pod in hook.pods(deployment.namespace, f"app={deployment.name}"):
                text = hook.pod_log(
                    deployment.namespace, pod["metadata"]["name"], deployment.container_name, 20_000, 8_000_000
                )
                out += [f for f in parse_log_failures(text) if f.at > since]
        return out

    def evaluate(self, data: LoginActivity, config: TradeOpsConfig) -> CheckResult:
        policy = config.security.logins
        by_user: dict[str, list[Failure]] = {}
        by_source: dict[str, set[str]] = {}
        for failure in data.failures:
            by_user.setdefault(failure.user, []).append(failure)
            by_source.setdefault(failure.source, set()).add(failure.user)
        findings = []
        for user, failures in sorted(by_user.items()):
            if len(failures) >= policy.brute_force_failures:
                sources = sorted({f.source for f in failures})
                message = f"brute force on {user}: {len(failures)} failed logins from {', '.join(sources[:5])}"
                facts = {"user": user, "failures": len(failures), "sources": sources[:20]}
                findings.append(Finding(f"login:brute-force:{user}", Status.FAIL, message, facts, critical=True))
            history = data.daily_failures.get(user, [])
            days = max(1, round(policy.history.total_seconds() / 86400))
            baseline = statistics.median(history + [0] * (days - len(history))) if history else 0
            if len(failures) >= max(policy.anomaly_min_failures, policy.anomaly_factor * max(baseline, 1)):
                message = f"{user}: {len(failures)} failed logins, {baseline:g} a day usually"
                facts = {"user": user, "failures": len(failures), "daily_median": baseline}
                findings.append(Finding(f"login:anomaly:{user}", Status.WARN, message, facts))
        for source, users in sorted(by_source.items()):
            if len(users) >= policy.spray_accounts:
                message = f"password spray from {source}: failed logins on {len(users)} accounts"
                facts = {"source": source, "accounts": sorted(users)[:50]}
                findings.append(Finding(f"login:spray:{source}", Status.FAIL, message, facts, critical=True))
        for user, source in data.new_privileged_sources:
            message = f"{user} (privileged) logged in from {source}, a source new to them"
            facts = {"user": user, "source": source}
            findings.append(Finding(f"login:new-source:{user}:{source}", Status.FAIL, message, facts))
        total = len(data.failures)
        bad = [f for f in findings if f.status is not Status.OK]
        summary = (
            f"{total} failed logins: " + "; ".join(f.message for f in bad)
            if bad
            else f"{total} failed logins from {len(by_source)} sources, no pattern"
        )
        return self.result(worst(f.status for f in findings), summary, findings=findings, failed_logins=total)
