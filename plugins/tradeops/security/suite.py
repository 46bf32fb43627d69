"""The daily security check's checks, in the order the report lists them."""

from __future__ import annotations

from tradeops.security.certificates import TlsCertificates
from tradeops.security.drift import ConfigurationDrift
from tradeops.security.gateway import GatewayAuthErrors
from tradeops.security.logins import FailedLogins
from tradeops.security.network import NetworkPolicies
from tradeops.security.privileges import Privileges
from tradeops.security.vulnerabilities import VulnerabilityScan

CHECKS = (
    TlsCertificates(),
    NetworkPolicies(),
    Privileges(),
    FailedLogins(),
    GatewayAuthErrors(),
    ConfigurationDrift(),
    VulnerabilityScan(),
)
