"""The shape of ``tradeops.yaml``: what the platform is made of and how TradeOps runs it.

Structure is checked by pydantic (types, ranges, unknown keys); the cross-references between sections
(a deployment in an undeclared namespace, a trading deployment that doesn't exist...) are checked by
:func:`tradeops.config.consistency.consistency_errors`, which reports each problem at the exact field that causes
it.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal, cast

from pydantic import Field, PositiveInt, field_validator, model_validator

from tradeops.config.access import AccessReview
from tradeops.config.alerts import AlertIntake
from tradeops.config.base import DNS_LABEL, Percent, Quantity, Severity, _Strict, parse_quantity
from tradeops.config.blue_green import BlueGreen
from tradeops.config.database import Database
from tradeops.config.durations import Duration, PositiveDuration
from tradeops.config.incident_response import IncidentResponse
from tradeops.config.security import Security
from tradeops.config.trading import MarketWatch, Reports, TradingDay


class Platform(_Strict):
    name: str
    exchange: str = Field(pattern=r"^[A-Z0-9]{3,5}$", description="exchange_calendars code, e.g. XNYS")
    runbook_base_url: str


class Connections(_Strict):
    state_db: str = "tradeops_state_db"
    slack_signing: str = "tradeops_slack_signing"
    slack_webhook: str = "tradeops_slack_webhook"
    platform_api: str = "tradeops_platform_api"
    alertmanager: str = "tradeops_alertmanager"
    alertmanager_webhook: str = "tradeops_alertmanager_webhook"
    platform_db: str = "tradeops_platform_db"
    redis: str = "tradeops_redis"
    slack_api: str = "tradeops_slack_api"
    kubernetes: str = "tradeops_kubernetes"
    airflow_api: str = "tradeops_airflow_api"


class Namespace(_Strict):
    name: str = Field(pattern=DNS_LABEL, max_length=63)
    default_deny_required: bool = True


class ReplicaProfile(_Strict):
    market_hours: int = Field(ge=0, le=100)
    off_hours: int = Field(ge=0, le=100)
    max: int | None = Field(default=None, ge=1, le=100, description="the most a runbook scales to (none: never up)")


class HealthEndpoint(_Strict):
    path: str = Field(pattern=r"^/")
    port: int = Field(ge=1, le=65535)


class ContainerResources(_Strict):
    """A container's requests and limits, as Kubernetes quantities (``250m`` or ``0.25`` CPU, ``512Mi`` memory)."""

    requests: dict[Literal["cpu", "memory"], Quantity] = Field(default_factory=dict)
    limits: dict[Literal["cpu", "memory"], Quantity] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _requests_within_limits(self) -> ContainerResources:
        for name, request in self.requests.items():
            limit = self.limits.get(name)
            if limit is not None and parse_quantity(request) > parse_quantity(limit):
                raise ValueError(f"requests.{name} {request} is more than limits.{name} {limit}")
        return self

    def manifest(self) -> dict[str, dict[str, str]]:
        """The ``resources`` of a container spec."""
        sections = {"requests": self.requests, "limits": self.limits}
        return {section: dict(values.items()) for section, values in sections.items() if values}


class Deployment(_Strict):
    name: str = Field(pattern=DNS_LABEL, max_length=63)
    namespace: str
    role: Literal["data", "agent", "execution", "gateway", "security", "monitoring"]
    image: str
    container: str | None = Field(default=None, description="container name; defaults to the deployment's name")
    replicas: ReplicaProfile
    health: HealthEndpoint
    resources: ContainerResources | None = Field(
        default=None, description="the container's requests and limits; defaults to kubernetes.resources"
    )

    @property
    def container_name(self) -> str:
        return self.container or self.name


class Kubernetes(_Strict):
    allowed_image_pattern: str
    namespaces: list[Namespace] = Field(min_length=1)
    deployments: list[Deployment] = Field(min_length=1)
    trading_deployments: list[str] = Field(
        default=["strategic-marl", "tactical-marl", "execution-engine"],
        description="what 'stop all trading' scales to zero, in this order",
    )
    resources: ContainerResources | None = Field(
        default=None, description="every deployment's container requests and limits, unless it declares its own"
    )

    @field_validator("allowed_image_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"not a valid regular expression: {err}") from None
        return value

    def deployment(self, name: str) -> Deployment:
        for deployment in self.deployments:
            if deployment.name == name:
                return deployment
        raise KeyError(f"no deployment named {name!r} in the TradeOps config")

    def resources_of(self, deployment: Deployment) -> ContainerResources | None:
        """The requests and limits declared for ``deployment``'s container: its own, else the section's (None:
        none declared)."""
        return deployment.resources or self.resources


class Account(_Strict):
    balance_min: float = Field(ge=0)
    balance_max: float = Field(gt=0)
    margin_available_min_pct: Percent


class Thresholds(_Strict):
    db_connections_warn_pct: Percent = 80
    db_connections_fail_pct: Percent = 95
    memory_warn_pct: Percent = 70
    memory_fail_pct: Percent = 90
    redis_memory_warn_pct: Percent = 75
    response_time_p95_ms: float = Field(default=100, gt=0)
    error_rate_pct: Percent = 0.1
    data_feed_max_lag_s: float = Field(default=5, gt=0)


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SessionFilter = Literal["every", "first_of_week", "last_of_week", "first_of_month", "last_of_month"]


class SessionAnchor(_Strict):
    """A moment relative to trading sessions: ``{anchor: open, offset: -90m}`` is 90 minutes before each open.

    ``sessions`` narrows which sessions count: ``first_of_month`` is the first trading day of each month.
    """

    anchor: Literal["open", "close"]
    offset: Duration = timedelta(0)
    sessions: SessionFilter = "every"

    @field_validator("offset")
    @classmethod
    def _within_a_day(cls, value: timedelta) -> timedelta:
        if abs(value) >= timedelta(hours=24):
            raise ValueError("an offset from the open or close must be shorter than 24h")
        return value


class ClockAnchor(_Strict):
    """A wall-clock time in the exchange's own time zone: ``{anchor: clock, at: "02:00", days: [sun]}``.

    With ``when_closed`` (the default) an occurrence that falls while the exchange is open is skipped.
    """

    anchor: Literal["clock"]
    at: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM, exchange local time")
    days: list[Weekday] = Field(default=list(WEEKDAYS), min_length=1)
    when_closed: bool = True


MarketAnchor = Annotated[SessionAnchor | ClockAnchor, Field(discriminator="anchor")]


class DeadlineTier(_Strict):
    """One deadline of a DAG run: ``{name: late, by: {anchor: open, offset: -10m}, severity: P2}``."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    by: MarketAnchor
    severity: Severity = "P3"


ScheduledDag = Literal[
    "daily_health_check",
    "pre_market_startup",
    "post_market_shutdown",
    "daily_db_maintenance",
    "weekly_maintenance",
    "daily_security_check",
    "monthly_access_review",
    "daily_ops_report",
    "market_hours_watch",
]


class SlackConfig(_Strict):
    channels: dict[Literal["ops", "alerts", "security", "management", "executive"], str]
    war_room_prefix: str = Field(default="inc-", pattern=r"^[a-z0-9][a-z0-9_-]*$")
    # e.g. https://quantnova.slack.com: the incidents page links threads to its permalinks (else via app_redirect)
    workspace_url: str | None = Field(default=None, pattern=r"^https://[a-z0-9][a-z0-9.-]*/?$")

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, value: dict[str, str]) -> dict[str, str]:
        for purpose, channel in value.items():
            if not re.match(r"^#[a-z0-9][a-z0-9_-]{0,79}$", channel):
                raise ValueError(f"channel for {purpose!r} must look like '#trading-ops', got {channel!r}")
        return value


SlackTarget = Annotated[str, Field(pattern=r"^[#@][a-z0-9][a-z0-9._-]*$")]


class EscalationLevel(_Strict):
    level: int = Field(ge=1, le=10)
    name: str
    targets: list[SlackTarget] = Field(min_length=1)


class SeverityPolicy(_Strict):
    initial_response: PositiveDuration
    escalate_after: PositiveDuration
    war_room: bool = False
    first_targets: list[SlackTarget] | None = Field(
        default=None, description="who hears first instead of level 1 (the security team for security incidents)"
    )


class Escalation(_Strict):
    """Level 1 hears at once; level 2 after the severity's ``initial_response`` without an acknowledgement; each
    further level ``escalate_after`` later; after the last level the policy starts again from level 1 ``repeat``
    times. An acknowledgement older than ``acknowledgement_timeout`` without a resolve re-fires the current level."""

    levels: list[EscalationLevel] = Field(min_length=1)
    severities: dict[Severity, SeverityPolicy]
    status_update_interval: PositiveDuration = timedelta(minutes=15)
    repeat: int = Field(default=0, ge=0, le=10, description="times the whole policy repeats after the last level")
    acknowledgement_timeout: PositiveDuration = timedelta(hours=1)
    failed_run_deadline_policy: Literal["merge", "suppress", "separate"] = Field(
        default="merge", description="what a deadline that fires for a run that already failed does"
    )


class WeeklyMaintenance(_Strict):
    """The Sunday window (seed: 02:00-04:00 ET): it opens at ``schedules.weekly_maintenance`` and lasts ``window``."""

    window: PositiveDuration = timedelta(hours=2)
    deployments: list[str] = Field(
        default_factory=list, description="updated to the image this config pins, then restarted"
    )
    log_retention_days: PositiveInt = 14
    certificate_min_days: PositiveInt = 21
    automatic_rollback: bool = Field(
        default=True,
        description="when the pinned images this window set fail to roll out, emergency_rollback puts exactly those "
        "deployments back to their previous revision, recorded on the window's incident",
    )


class TaskDeadline(_Strict):
    """Tasks that must have succeeded by a market moment; if not, an incident opens."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    tasks: list[str] = Field(min_length=1)
    by: MarketAnchor
    severity: Severity = "P2"


# every DAG dagkit.scheduled_dag builds, and the manual ones built with manual_dag(page_on_failure=True)
RunbookDag = Literal[ScheduledDag, "incident_escalation_engine", "incident_response"]
OPT_OUT = "opt_out"


class RunbookFailure(_Strict):
    """A scheduled runbook whose task fails opens one incident per DAG (``runbook:<dag_id>``; later failures add
    occurrences to it until it is resolved) at its severity in ``dags``, else ``default_severity``; ``opt_out`` opens
    none. One mapping: a DAG cannot be both, and a file that ``extends`` another can opt out a DAG the base rates."""

    default_severity: Severity = "P2"
    dags: dict[RunbookDag, Literal[Severity, "opt_out"]] = {}

    def severity_for(self, dag_id: str) -> Severity | None:
        """The severity of ``dag_id``'s runbook incident; None when the DAG opted out."""
        setting = cast(dict[str, str], self.dags).get(dag_id, self.default_severity)
        return None if setting == OPT_OUT else cast(Severity, setting)


class Incidents(_Strict):
    check_severity: dict[str, Severity] = Field(
        default={},
        description="severity of the incident a failed check task opens, by task id (else P3); the one "
        "place a check's severity comes from",
    )
    critical_tasks: dict[str, dict[str, Severity]] = {}
    runbook_failure: RunbookFailure = RunbookFailure()
    task_deadlines: dict[ScheduledDag, list[TaskDeadline]] = {}
    max_silence_minutes: int = Field(
        default=24 * 60,
        ge=1,
        le=7 * 24 * 60,
        description="the longest silence anyone may set (the form's limit and the service's)",
    )
    # The escalation_engine check fails when the engine's newest heartbeat (one at least every 30 s) is older.
    engine_stale_after: PositiveDuration = Field(default=timedelta(minutes=3), ge=timedelta(minutes=1))
    # A check that fails looks again after this pause; only a failure seen twice counts (and pages, at once).
    recheck_after: Duration = Field(default=timedelta(seconds=5), ge=timedelta(0), le=timedelta(minutes=1))


class TradeOpsConfig(_Strict):
    version: Literal[1]
    platform: Platform
    connections: Connections = Connections()
    kubernetes: Kubernetes
    database: Database
    account: Account
    thresholds: Thresholds = Thresholds()
    schedules: dict[ScheduledDag, MarketAnchor]
    deadlines: dict[ScheduledDag, list[DeadlineTier]] = {}
    slack: SlackConfig
    escalation: Escalation
    incidents: Incidents = Incidents()
    weekly_maintenance: WeeklyMaintenance = WeeklyMaintenance()
    trading_day: TradingDay = TradingDay()
    market_watch: MarketWatch = MarketWatch()
    reports: Reports = Reports()
    blue_green: BlueGreen = BlueGreen()
    security: Security = Security()
    access_review: AccessReview = AccessReview()
    alerts: AlertIntake = AlertIntake()
    incident_response: IncidentResponse = IncidentResponse()
