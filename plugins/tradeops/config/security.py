"""The ``security`` section of ``tradeops.yaml``: what ``daily_security_check`` holds the platform to.

Everything a check compares against is declared here or committed next to the config (the ConfigMap baseline):
the thresholds of each check, the subjects allowed to hold cluster-admin, and each platform service account's
least-privilege set, so a permission that is not written down is a finding.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, PositiveInt

from tradeops.config.base import Severity, _Strict
from tradeops.config.durations import PositiveDuration


class CertificatePolicy(_Strict):
    warn_days: PositiveInt = 30
    critical_days: PositiveInt = 7
    min_rsa_bits: PositiveInt = 2048
    min_ec_bits: PositiveInt = 256


class LoginPolicy(_Strict):
    """Failed logins over ``window``: ``brute_force_failures`` on one account, or one source failing on
    ``spray_accounts`` accounts or more; a privileged user's successful login from a source not seen in
    ``history``; and a user whose failures in the window are ``anomaly_factor`` times their own daily median."""

    window: PositiveDuration = timedelta(hours=24)
    history: PositiveDuration = timedelta(days=30)
    brute_force_failures: PositiveInt = 10
    spray_accounts: PositiveInt = 5
    privileged_roles: list[str] = ["admin"]
    anomaly_factor: float = Field(default=5.0, gt=1)
    anomaly_min_failures: PositiveInt = 10


class GatewayPolicy(_Strict):
    """The gateway's 401/403 share over the last ``recent``, against its baseline: the median of its daily shares
    over the previous ``history_days`` (stored run after run, as the logs rotate), or its share before ``recent``
    in the same logs while fewer than ``min_history_days`` are stored. ``spike_factor`` times the baseline, with at
    least ``min_errors`` of them, is a finding."""

    recent: PositiveDuration = timedelta(minutes=10)
    spike_factor: float = Field(default=3.0, gt=1)
    min_errors: PositiveInt = 20
    history_days: PositiveInt = 7
    min_history_days: PositiveInt = 3


class Permission(_Strict):
    """One RBAC rule, as a Role writes it."""

    api_groups: list[str] = Field(alias="apiGroups", min_length=1)
    resources: list[str] = Field(min_length=1)
    verbs: list[str] = Field(min_length=1)


class ServiceAccountPolicy(_Strict):
    """All a platform service account may do: its ``rules``, and the rules of the ``cluster_roles`` named."""

    rules: list[Permission] = []
    cluster_roles: list[str] = []


class Subject(_Strict):
    kind: str = Field(pattern=r"^(User|Group|ServiceAccount)$")
    name: str
    namespace: str | None = None


class Security(_Strict):
    namespace_label: str = Field(
        default="app.kubernetes.io/part-of=grandmodel",
        pattern=r"^[a-z0-9./-]+=[A-Za-z0-9._-]+$",
        description="namespaces with this label are the platform's, with the config's own namespaces",
    )
    certificates: CertificatePolicy = CertificatePolicy()
    logins: LoginPolicy = LoginPolicy()
    gateway: GatewayPolicy = GatewayPolicy()
    cluster_admin_subjects: list[Subject] = Field(
        default=[Subject(kind="Group", name="system:masters")],
        description="the only subjects a binding to cluster-admin may name",
    )
    service_accounts: dict[str, ServiceAccountPolicy] = Field(
        default={},
        description="namespace/name of each platform service account, and all it may do (least privilege)",
    )
    baseline: str = Field(
        default="include/security/baseline.yaml",
        description="the approved ConfigMaps (a SHA-256 per key), relative to the repository",
    )
    critical_severity: Severity = Field(default="security", description="of the incident a critical finding opens")
    high_severity: Severity = Field(default="P2", description="of the incident any other failed finding opens")
