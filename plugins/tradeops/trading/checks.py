"""pre_market_startup's checks (seed: "Trading Day Startup Procedure"): the session the run prepares, the three
gates that must pass before anything is scaled up (account, model files, risk limits), the cluster against the
config, and the agents' communication once they are up.

Each one collects (the platform API, the Kubernetes API, the exchange calendar) and evaluates what it read against
the config (pure, unit-tested on fixed data). DAG files import this module at parse time: hooks and the calendar
are imported when a check collects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo

from tradeops.checks.base import Check, CheckResult, Finding, Status

if TYPE_CHECKING:
    from tradeops.calendar.sessions import Session
    from tradeops.config import TradeOpsConfig
    from tradeops.platform.hooks import TradingPlatformHook

Payload = dict[str, Any]
ACTIVE_ACCOUNT = "active"
SLOW_LINK_MS = 50.0  # a round trip between two agents slower than this is worth a look (they talk every tick)


def _platform(config: TradeOpsConfig) -> TradingPlatformHook:
    from tradeops.platform.hooks import TradingPlatformHook

    return TradingPlatformHook(config.connections.platform_api)


def _clock(moment: datetime, tz: str) -> str:
    return moment.astimezone(ZoneInfo(tz)).strftime("%H:%M")


@dataclass(frozen=True)
class SessionLook:
    """What the calendar says at ``moment``: the session the run prepares, and the exchange's time zone."""

    moment: datetime
    session: Session
    tz: str


class TradingSession(Check[SessionLook]):
    """The session this run prepares (``current_or_next`` of the run's ``run_after``), its open and close in the
    exchange's time, an early close announced; a run on a day without a session says which one it prepares.
    :class:`~tradeops.trading.operators.SessionCheckOperator` gives it the run's moment."""

    name = "trading_session"
    title = "Trading session"
    action = "Check the exchange calendar: the run prepares the session named here."

    def __init__(self, moment: datetime | None = None) -> None:
        self.moment = moment

    def at(self, moment: datetime) -> TradingSession:
        """This check for the run at ``moment``."""
        return type(self)(moment)

    def collect(self, config: TradeOpsConfig) -> SessionLook:
        from tradeops.calendar.sessions import sessions_for

        if self.moment is None:
            raise ValueError("the trading session check needs the run's moment (use SessionCheckOperator)")
        table = sessions_for(config.platform.exchange)
        return SessionLook(self.moment, table.current_or_next(self.moment), table.tz)

    def evaluate(self, data: SessionLook, config: TradeOpsConfig) -> CheckResult:
        session, tz = data.session, data.tz
        opens, closes = _clock(session.open, tz), _clock(session.close, tz)
        exchange = config.platform.exchange
        local_day = data.moment.astimezone(ZoneInfo(tz)).date()
        details = {
            "session": session.day.isoformat(),
            "open": session.open.isoformat(),
            "close": session.close.isoformat(),
            "open_local": opens,
            "close_local": closes,
            "tz": tz,
            "early_close": session.early_close,
        }
        findings = [Finding(f"session:{session.day}", Status.OK, f"{exchange} {session.day}: {opens}-{closes} {tz}")]
        summary = f"{exchange} session {session.day}: opens {opens}, closes {closes} ({tz})"
        if session.early_close:
            findings.append(Finding("session:early-close", Status.WARN, f"early close at {closes} {tz} today"))
            summary += f"; EARLY CLOSE at {closes}"
        if session.day != local_day:
            findings.append(
                Finding(
                    "session:not-today",
                    Status.WARN,
                    f"no {exchange} session on {local_day}: this run prepares the next one, {session.day}",
                )
            )
            summary = f"no session on {local_day}; prepares the next one: " + summary
        status = Status.WARN if len(findings) > 1 else Status.OK
        return self.result(status, summary, findings=findings, action="" if status is Status.OK else None, **details)


class AccountReady(Check[Payload]):
    """Gate: the trading account is active with trading enabled, and enough margin is available
    (``account.margin_available_min_pct``)."""

    name = "account_ready"
    title = "Trading account ready"
    dependency = "platform_api"
    action = "Nothing was scaled up. Tell the trading desk and risk: funding, restrictions, or positions to reduce."
    retry_after_fail: ClassVar[bool] = False  # the second look already confirmed it; the open does not wait

    def collect(self, config: TradeOpsConfig) -> Payload:
        platform = _platform(config)
        return {"status": platform.get("/v1/account/status"), "margin": platform.get("/v1/account/margin")}

    def evaluate(self, data: Payload, config: TradeOpsConfig) -> CheckResult:
        status, margin = data["status"], data["margin"]
        pct, minimum = float(margin["margin_available_pct"]), config.account.margin_available_min_pct
        active = status["status"] == ACTIVE_ACCOUNT and bool(status["trading_enabled"])
        findings = [
            Finding(
                "account:status",
                Status.OK if active else Status.FAIL,
                f"account {status['status']}, trading {'enabled' if status['trading_enabled'] else 'disabled'}",
            ),
            Finding(
                "account:margin",
                Status.OK if pct >= minimum else Status.FAIL,
                f"margin available {pct:g}% (minimum {minimum:g}%)",
            ),
        ]
        details = {"account_status": status["status"], "trading_enabled": status["trading_enabled"]}
        details |= {"margin_available_pct": pct, "margin_available_min_pct": minimum}
        failed = [f.message for f in findings if f.status is Status.FAIL]
        if failed:
            return self.result(Status.FAIL, "; ".join(failed), findings=findings, **details)
        return self.result(Status.OK, f"account active, margin available {pct:g}%", findings=findings, **details)


class ModelFiles(Check[Payload]):
    """Gate: every agent's model file is there, at the version of the agent's pinned image, with the sha256 the
    platform expects (``/v1/models/validation``)."""

    name = "model_files"
    title = "Model files"
    dependency = "platform_api"
    action = "Nothing was scaled up. Restore the model files from the model registry and run the startup again."
    retry_after_fail: ClassVar[bool] = False

    def collect(self, config: TradeOpsConfig) -> Payload:
        return _platform(config).get("/v1/models/validation")

    def evaluate(self, data: Payload, config: TradeOpsConfig) -> CheckResult:
        models = {m["name"]: m for m in data["models"]}
        findings = []
        for deployment in (d for d in config.kubernetes.deployments if d.role == "agent"):
            model, version = models.get(deployment.name), deployment.image.rsplit(":", 1)[-1]
            key = f"model:{deployment.name}"
            if model is None:
                findings.append(Finding(key, Status.FAIL, f"{deployment.name}: no model file"))
            elif model["sha256"] != model["expected_sha256"]:
                findings.append(
                    Finding(
                        key,
                        Status.FAIL,
                        f"{deployment.name}: {model['path']} sha256 {model['sha256'][:12]}… "
                        f"expected {model['expected_sha256'][:12]}…",
                        {"path": model["path"], "sha256": model["sha256"], "expected": model["expected_sha256"]},
                    )
                )
            elif model["version"] != version:
                findings.append(
                    Finding(key, Status.FAIL, f"{deployment.name}: model {model['version']}, image pins {version}")
                )
            else:
                findings.append(Finding(key, Status.OK, f"{deployment.name} {version}: sha256 verified"))
        failed = [f.message for f in findings if f.status is Status.FAIL]
        if failed:
            return self.result(Status.FAIL, "; ".join(failed), findings=findings)
        return self.result(Status.OK, f"{len(findings)} model files verified (sha256)", findings=findings)


class RiskLimits(Check[Payload]):
    """Gate: the platform's risk limits are exactly ``trading_day.risk_limits`` (a missing, extra or different
    limit fails, by name), and nothing is already over its limit."""

    name = "risk_limits"
    title = "Risk limits"
    dependency = "platform_api"
    action = "Nothing was scaled up. Have risk management set the limits the config declares (or change the config)."
    retry_after_fail: ClassVar[bool] = False

    def collect(self, config: TradeOpsConfig) -> Payload:
        return _platform(config).get("/v1/risk/limits")

    def evaluate(self, data: Payload, config: TradeOpsConfig) -> CheckResult:
        declared = config.trading_day.risk_limits
        live = {limit["name"]: limit for limit in data["limits"]}
        findings = []
        for name in sorted(declared.keys() | live.keys()):
            key, limit = f"risk:{name}", live.get(name)
            if limit is None:
                findings.append(
                    Finding(key, Status.FAIL, f"{name}: not set on the platform (config: {declared[name]:g})")
                )
            elif name not in declared:
                findings.append(
                    Finding(key, Status.FAIL, f"{name}: set on the platform ({limit['limit']:g}), not in the config")
                )
            elif float(limit["limit"]) != float(declared[name]):
                message = f"{name}: platform {limit['limit']:g}, config {declared[name]:g}"
                findings.append(
                    Finding(key, Status.FAIL, message, {"live": limit["limit"], "expected": declared[name]})
                )
            elif float(limit["current"]) > float(limit["limit"]):
                findings.append(
                    Finding(key, Status.FAIL, f"{name}: already at {limit['current']:g}, over {limit['limit']:g}")
                )
            else:
                findings.append(Finding(key, Status.OK, f"{name} = {limit['limit']:g} (now {limit['current']:g})"))
        failed = [f.message for f in findings if f.status is Status.FAIL]
        if failed:
            return self.result(Status.FAIL, "; ".join(failed), findings=findings)
        return self.result(Status.OK, f"{len(findings)} risk limits as configured", findings=findings)


def _started(config: TradeOpsConfig) -> list:
    return [d for d in config.kubernetes.deployments if d.role in config.trading_day.scale_roles]


class ClusterMatchesConfig(Check[dict[str, Any]]):
    """Each deployment the startup brings up (roles in ``trading_day.scale_roles``) runs the config's pinned image;
    drift is reported object by object (deployment, expected, live). Drift anywhere else (monitoring, the gateway)
    is ``daily_security_check``'s finding, not a reason to hold the open."""

    name = "cluster_matches_config"
    title = "Cluster matches config"
    dependency = "kubernetes"
    action = "Roll the drifted deployments back to the pinned image, or pin the new one in the config."

    def collect(self, config: TradeOpsConfig) -> dict[str, Any]:
        from tradeops.exceptions import KubernetesNotFound
        from tradeops.kubernetes.hooks import KubernetesApiHook

        hook = KubernetesApiHook(config.connections.kubernetes)
        live: dict[str, Any] = {}
        for deployment in _started(config):
            try:
                live[deployment.name] = hook.deployment(deployment.namespace, deployment.name)
            except KubernetesNotFound:
                live[deployment.name] = None
        return live

    def evaluate(self, data: dict[str, Any], config: TradeOpsConfig) -> CheckResult:
        findings = []
        for deployment in _started(config):
            key, obj = f"deployment:{deployment.namespace}/{deployment.name}", data.get(deployment.name)
            if obj is None:
                missing = {"deployment": deployment.name, "expected": deployment.image, "live": None}
                findings.append(Finding(key, Status.FAIL, f"{deployment.name}: not in the cluster", missing))
                continue
            containers = {c["name"]: c.get("image") for c in obj["spec"]["template"]["spec"]["containers"]}
            image = containers.get(deployment.container_name)
            drift = {"deployment": deployment.name, "expected": deployment.image, "live": image}
            if image != deployment.image:
                message = f"{deployment.name}: runs {image}, config pins {deployment.image}"
                findings.append(Finding(key, Status.FAIL, message, drift))
            else:
                findings.append(Finding(key, Status.OK, f"{deployment.name}: {image}", drift))
        drifted = [f for f in findings if f.status is Status.FAIL]
        if drifted:
            summary = f"{len(drifted)} of {len(findings)} deployments drifted: " + "; ".join(f.message for f in drifted)
            return self.result(Status.FAIL, summary, findings=findings, drift=[f.details for f in drifted])
        return self.result(Status.OK, f"all {len(findings)} deployments run their pinned image", findings=findings)


class AgentCommunication(Check[Payload]):
    """Every agent reaches its peers and the platform core (``/v1/agents/communication``); slow links warn."""

    name = "agent_communication"
    title = "Agent communication"
    dependency = "platform_api"
    action = "Check the unreachable agents' pods and network policies before the open."

    def collect(self, config: TradeOpsConfig) -> Payload:
        return _platform(config).get("/v1/agents/communication")

    def evaluate(self, data: Payload, config: TradeOpsConfig) -> CheckResult:
        findings, slowest = [], 0.0
        for agent in data["agents"]:
            down = [link["peer"] for link in agent["links"] if not link["reachable"]]
            times = [link["round_trip_ms"] for link in agent["links"] if link["reachable"]]
            worst_ms = max(times, default=0.0)
            slowest = max(slowest, worst_ms)
            key = f"agent:{agent['agent']}"
            if down:
                findings.append(Finding(key, Status.FAIL, f"{agent['agent']} cannot reach {', '.join(down)}"))
            elif worst_ms > SLOW_LINK_MS:
                findings.append(Finding(key, Status.WARN, f"{agent['agent']}: slowest round trip {worst_ms:g} ms"))
            else:
                message = f"{agent['agent']}: {len(times)} peers, slowest {worst_ms:g} ms"
                findings.append(Finding(key, Status.OK, message))
        if not findings:
            return self.result(Status.FAIL, "the platform reports no agents", findings=findings)
        failed = [f.message for f in findings if f.status is Status.FAIL]
        if failed:
            return self.result(Status.FAIL, "; ".join(failed), findings=findings)
        status = Status.WARN if any(f.status is Status.WARN for f in findings) else Status.OK
        summary = f"{len(findings)} agents reach all their peers (slowest round trip {slowest:g} ms)"
        return self.result(status, summary, findings=findings, slowest_ms=slowest)
