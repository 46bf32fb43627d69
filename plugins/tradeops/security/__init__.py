"""The daily security check: one :class:`~tradeops.checks.base.Check` per concern (certificates, network isolation,
privileges, logins, the gateway's 401/403 rate, configuration drift, vulnerabilities), findings tracked from run to
run with one incident each (:mod:`~tradeops.security.findings`), and the report (:mod:`~tradeops.security.report`)."""
