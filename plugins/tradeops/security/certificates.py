"""TLS certificates, parsed as X.509: expiry (warn, critical, expired), not yet valid, a key too weak, a chain that
does not verify, and a hostname that the Ingress serving the secret uses but the certificate does not cover.

Only ``tls.crt`` and ``ca.crt`` are read; ``tls.key`` is dropped the moment a secret is listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tradeops.checks.base import Check, CheckResult, Finding, Status, worst

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig


@dataclass(frozen=True)
class ParsedCertificate:
    """The public facts of a TLS secret's leaf certificate."""

    secret: str  # namespace/name
    subject: str
    not_before: datetime
    not_after: datetime
    dns_names: tuple[str, ...]
    key_type: str  # RSA, EC, Ed25519...
    key_bits: int
    chain_verified: bool | None  # None: no issuer certificate in the secret to verify against
    served_hosts: tuple[str, ...] = ()  # the hosts of the Ingresses that serve this secret


@dataclass(frozen=True)
class CertificateInventory:
    certificates: list[ParsedCertificate]
    read_at: datetime
    unreadable: dict[str, str] = field(default_factory=dict)  # secret -> why its tls.crt could not be parsed


def _covers(pattern: str, host: str) -> bool:
    """RFC 6125: a wildcard stands for exactly one leftmost label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        return host.count(".") == pattern.count(".") and host.split(".", 1)[1] == pattern[2:]
    return pattern == host


def parse(secret_id: str, pem: bytes, ca_pem: bytes, served: tuple[str, ...] = ()) -> ParsedCertificate:
    """The leaf of ``pem`` and whether the next certificate (in ``pem``, else ``ca_pem``) signed it."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    chain = x509.load_pem_x509_certificates(pem)
    leaf = chain[0]
    issuers = chain[1:] or (x509.load_pem_x509_certificates(ca_pem) if ca_pem else [])
    verified: bool | None = None
    if issuers:
        try:
            leaf.verify_directly_issued_by(issuers[0])
            verified = True
        except (ValueError, TypeError, Exception):
            verified = False
    key = leaf.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        key_type, bits = "RSA", key.key_size
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key_type, bits = "EC", key.curve.key_size
    else:
        key_type, bits = type(key).__name__.removesuffix("PublicKey").lstrip("_"), 256
    try:
        names = tuple(
            leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        )
    except x509.ExtensionNotFound:
        names = ()
    return ParsedCertificate(
        secret_id,
        leaf.subject.rfc4514_string(),
        leaf.not_valid_before_utc,
        leaf.not_valid_after_utc,
        names,
        key_type,
        bits,
        verified,
        served,
    )


class TlsCertificates(Check[CertificateInventory]):
    """Every ``kubernetes.io/tls`` secret of the config's namespaces: warn ``security.certificates.warn_days``
    before expiry, fail at ``critical_days`` and once expired (critical), fail when not yet valid, on a key under
    the minimum size, a chain that does not verify, or an Ingress host the certificate does not cover.
    """

    name = "tls_certificates"
    title = "TLS certificates"
    dependency = "kubernetes_api"
    retry_after_fail = False
    action = "Renew or replace the certificates named (and roll the pods that mount them)."

    def collect(self, config: TradeOpsConfig) -> CertificateInventory:
        import base64

        from tradeops.kubernetes.hooks import KubernetesApiHook

        hook = KubernetesApiHook(config.connections.kubernetes)
        found, unreadable = [], {}
        for namespace in (ns.name for ns in config.kubernetes.namespaces):
            served: dict[str, list[str]] = {}
            for ingress in hook.ingresses(namespace):
                for tls in ingress.get("spec", {}).get("tls") or []:
                    served.setdefault(tls.get("secretName", ""), []).extend(tls.get("hosts") or [])
            for secret in hook.tls_secrets(namespace):
                name = secret["metadata"]["name"]
                data = secret.get("data") or {}
                pem, ca = base64.b64decode(data.get("tls.crt", "")), base64.b64decode(data.get("ca.crt", ""))
                secret_id = f"{namespace}/{name}"
                try:
                    found.append(parse(secret_id, pem, ca, tuple(served.get(name, ()))))
                except ValueError as err:
                    unreadable[secret_id] = str(err)[:200]
        return CertificateInventory(found, datetime.now(UTC), unreadable)

    def evaluate(self, data: CertificateInventory, config: TradeOpsConfig) -> CheckResult:
        policy = config.security.certificates
        findings = []
        for cert in data.certificates:
            days = (cert.not_after - data.read_at).total_seconds() / 86400
            facts = {
                "secret": cert.secret,
                "subject": cert.subject,
                "not_after": cert.not_after.isoformat(),
                "days_left": round(days, 1),
                "key": f"{cert.key_type} {cert.key_bits}",
            }
            problems: list[tuple[Status, bool, str]] = []
            if days < 0:
                problems.append((Status.FAIL, True, f"expired {-days:.1f} days ago"))
            elif days < policy.critical_days:
                problems.append((Status.FAIL, True, f"expires in {days:.1f} days"))
            elif days < policy.warn_days:
                problems.append((Status.WARN, False, f"expires in {days:.1f} days"))
            if cert.not_before > data.read_at:
                problems.append((Status.FAIL, False, f"not valid before {cert.not_before:%Y-%m-%d %H:%M} UTC"))
            minimum = {"RSA": policy.min_rsa_bits, "EC": policy.min_ec_bits}.get(cert.key_type, 0)
            if cert.key_bits < minimum:
                problems.append((Status.FAIL, False, f"weak key: {cert.key_type} {cert.key_bits} bits"))
            if cert.chain_verified is False:
                problems.append((Status.FAIL, False, "its issuer's certificate did not sign it"))
            uncovered = [h for h in cert.served_hosts if not any(_covers(n, h) for n in cert.dns_names)]
            if uncovered:
                problems.append((Status.FAIL, False, f"does not cover {', '.join(uncovered)} (its Ingress)"))
            if problems:
                status = worst(p[0] for p in problems)
                message = f"{cert.secret}: " + "; ".join(p[2] for p in problems)
                critical = any(p[1] for p in problems)
                findings.append(Finding(f"tls:{cert.secret}", status, message, facts, critical=critical))
            else:
                findings.append(Finding(f"tls:{cert.secret}", Status.OK, f"{cert.secret}: {days:.0f} days left", facts))
        for secret_id, why in data.unreadable.items():
            findings.append(Finding(f"tls:{secret_id}", Status.FAIL, f"{secret_id}: tls.crt unreadable ({why})"))
        bad = [f for f in findings if f.status is not Status.OK]
        status = worst(f.status for f in findings)
        summary = (
            f"{len(bad)} of {len(findings)} certificates need attention: " + "; ".join(f.message for f in bad)
            if bad
            else f"{len(findings)} certificates valid for {policy.warn_days}+ days"
        )
        return self.result(status, summary, findings=findings)
