"""
### Daily security check

Seed runbooks: *Daily Security Checks*, *Security Monitoring*, *Configuration Drift Detection* and the pre-market
*Security Validation*, run on every trading day at 06:00 New York time (`schedules.daily_security_check`: 3.5 hours
before the XNYS open), before `pre_market_startup`. The seeds grep `kubectl` output; each check here parses what it
reads and decides against `security` in `tradeops.yaml`.

| task | reads | fails when |
|---|---|---|
| `tls_certificates` | TLS secrets as X.509 | < 7 days, expired (critical); not yet valid, weak key, chain, host |
| `network_policies` | NetworkPolicies | a namespace without default-deny; a trading service open to all (critical) |
| `privileges` | RBAC, SubjectAccessReview | cluster-admin outside the allowed (critical); beyond least privilege |
| `failed_logins` | `login_events`, auth logs | brute force, spray (critical); privileged user from a new source |
| `gateway_auth_errors` | gateway access logs | 401/403 share of the last 10 min 3x the share before (and 20+) |
| `configuration_drift` | deployments, RBAC, ConfigMaps | unlike the config, committed manifests, approved baseline |
| `vulnerability_scan` | the platform's scan of the running images | a critical (critical) or high vulnerability |
| `track_findings` | earlier runs' findings | never: each finding new, still open or fixed; incidents |
| `report` | results, tracked findings | any check failed (after the report and the Slack summary) |

Each check is an Airflow task with its own result. Every finding has a stable id
(`tls:grandmodel/legacy-admin-tls`, `rbac:sa:grandmodel/deployer`...), so the report says what is new, still open
and fixed. A failed finding is one incident (`security:<id>`) across runs, at
`security.critical_severity` (the security team hears first) when critical, else `high_severity`; the first run
that no longer finds it resolves it. The report (HTML, summary on top) is written next to the other reports and
linked from one message to the security channel. Nothing secret reaches a log, XCom, report or message: only
`tls.crt` is parsed, and findings name users, sources and objects.

Deadline (`deadlines.daily_security_check`): not finished by 60 minutes before the open (when the startup begins)
opens a P2 incident.
"""

from __future__ import annotations

from datetime import timedelta

from tradeops.checks.operators import CheckOperator
from tradeops.dagkit import scheduled_dag
from tradeops.security.operators import SecurityReportOperator, TrackFindingsOperator
from tradeops.security.suite import CHECKS

with scheduled_dag(
    "daily_security_check",
    owner="security",
    dagrun_timeout=timedelta(minutes=45),
    description="Certificates, network isolation, permissions, logins and drift, tracked from run to run",
    tags=["security"],
    doc_md=__doc__,
):
    task_ids = [check.name for check in CHECKS]
    checks = [CheckOperator(task_id=check.name, check=check) for check in CHECKS]
    track = TrackFindingsOperator(task_id="track_findings", check_task_ids=task_ids)
    checks >> track >> SecurityReportOperator(task_id="report", check_task_ids=task_ids, track_task_id="track_findings")
