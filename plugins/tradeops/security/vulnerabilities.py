"""The platform's vulnerability scan (``POST /v1/security/scan``) of the images the cluster actually runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tradeops.checks.base import Check, CheckResult, Finding, Status

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig

BLOCKING = ("critical", "high")


@dataclass(frozen=True)
class ScanReport:
    images: dict[str, list[str]]  # image -> the deployments (namespace/name) running it
    findings: list[dict[str, Any]]  # {"image", "id", "severity"}


class VulnerabilityScan(Check[ScanReport]):
    """Every image the platform's deployments run (read from the cluster, not the config), scanned by the platform:
    a critical vulnerability fails (critical), a high one fails; medium and low are counted."""

    name = "vulnerability_scan"
    title = "Vulnerability scan"
    dependency = "platform_api"
    action = "Rebuild the images named on a patched base and roll them out (blue_green_deploy)."

    def collect(self, config: TradeOpsConfig) -> ScanReport:
        from tradeops.kubernetes.hooks import KubernetesApiHook
        from tradeops.platform.hooks import TradingPlatformHook

        hook = KubernetesApiHook(config.connections.kubernetes)
        images: dict[str, list[str]] = {}
        for namespace in (ns.name for ns in config.kubernetes.namespaces):
            for deployment in hook.deployments(namespace):
                for container in deployment["spec"]["template"]["spec"]["containers"]:
                    images.setdefault(container["image"], []).append(f"{namespace}/{deployment['metadata']['name']}")
        platform = TradingPlatformHook(config.connections.platform_api)
        answer = platform.request(
            "POST", "/v1/security/scan", json={"images": sorted(images), "fail_on": list(BLOCKING)}
        )
        return ScanReport(images, answer["findings"])

    def evaluate(self, data: ScanReport, config: TradeOpsConfig) -> CheckResult:
        findings = []
        counts: dict[str, int] = {}
        for vuln in data.findings:
            severity = vuln["severity"].lower()
            counts[severity] = counts.get(severity, 0) + 1
            if severity not in BLOCKING:
                continue
            where = ", ".join(data.images.get(vuln["image"], []))
            message = f"{vuln['id']} ({severity}) in {vuln['image']}, run by {where}"
            facts = {"image": vuln["image"], "vulnerability": vuln["id"], "severity": severity, "deployments": where}
            findings.append(
                Finding(
                    f"vuln:{vuln['image']}:{vuln['id']}", Status.FAIL, message, facts, critical=severity == "critical"
                )
            )
        tally = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"
        if findings:
            summary = f"{len(findings)} blocking vulnerabilities: " + "; ".join(f.message for f in findings)
            return self.result(Status.FAIL, summary, findings=findings, counts=counts)
        return self.result(Status.OK, f"{len(data.images)} images scanned, nothing blocking ({tally})", counts=counts)
