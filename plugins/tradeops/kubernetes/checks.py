"""Checks of what the cluster holds: TLS certificates about to expire.

DAG files import this module at parse time: the Kubernetes client and ``cryptography`` are imported when a check
collects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tradeops.checks.base import Check, CheckResult, Finding, Status

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig


@dataclass(frozen=True)
class Certificate:
    """The public facts of the leaf certificate in a TLS secret's ``tls.crt`` (never its key)."""

    secret: str  # namespace/name
    subject: str
    not_after: datetime


@dataclass(frozen=True)
class Certificates:
    """The certificates found in the config's namespaces, and when they were read (days left count from then)."""

    certificates: list[Certificate]
    read_at: datetime


class CertificateExpiry(Check[Certificates]):
    """Every TLS secret (``type=kubernetes.io/tls``) in the config's namespaces holds a certificate valid for at least
    ``min_days`` more days. Only ``tls.crt`` is parsed; key material is never kept, logged or returned.

    :param min_days: the fewest days of validity left that pass.
    :param kubernetes_conn_id: the cluster's Airflow connection; defaults to the config's ``connections.kubernetes``.
    """

    name = "certificate_check"
    title = "TLS certificates"
    dependency = "kubernetes_api"
    retry_after_fail = False  # the same secrets a minute later: only an unreachable API is worth a retry
    action = "Renew the expiring certificates (and roll the pods that mount them) before they expire."

    def __init__(self, *, min_days: int, kubernetes_conn_id: str | None = None) -> None:
        self.min_days = min_days
        self.kubernetes_conn_id = kubernetes_conn_id

    def collect(self, config: TradeOpsConfig) -> Certificates:
        import base64

        from cryptography import x509

        from tradeops.kubernetes.hooks import KubernetesApiHook

        hook = KubernetesApiHook(self.kubernetes_conn_id or config.connections.kubernetes)
        found = []
        for namespace in (ns.name for ns in config.kubernetes.namespaces):
            for secret in hook.tls_secrets(namespace):
                pem = base64.b64decode((secret.get("data") or {}).get("tls.crt", ""))
                if not pem:
                    continue
                cert = x509.load_pem_x509_certificate(pem)  # the first (leaf) certificate of the chain
                found.append(
                    Certificate(
                        f"{namespace}/{secret['metadata']['name']}",
                        cert.subject.rfc4514_string(),
                        cert.not_valid_after_utc,
                    )
                )
        return Certificates(found, datetime.now(UTC))

    def evaluate(self, data: Certificates, config: TradeOpsConfig) -> CheckResult:
        entries, findings = [], []
        for cert in data.certificates:
            days = (cert.not_after - data.read_at).total_seconds() / 86400
            entry = {
                "secret": cert.secret,
                "subject": cert.subject,
                "not_after": cert.not_after.isoformat(),
                "days_left": round(days, 1),
            }
            entries.append(entry)
            findings.append(
                Finding(
                    f"secret:{cert.secret}",
                    Status.FAIL if days < self.min_days else Status.OK,
                    f"{cert.subject}, {entry['days_left']} days left",
                    entry,
                )
            )
        expiring = [f.details for f in findings if f.status is Status.FAIL]
        if expiring:
            summary = (
                f"{len(expiring)} of {len(entries)} certificates expire within {self.min_days} days: "
                + ", ".join(f"{e['secret']} ({e['days_left']} d)" for e in expiring)
            )
            return self.result(Status.FAIL, summary, findings=findings, certificates=entries)
        return self.result(
            Status.OK,
            f"{len(entries)} certificates valid for {self.min_days}+ days",
            findings=findings,
            certificates=entries,
        )
