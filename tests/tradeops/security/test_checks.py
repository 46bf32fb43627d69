"""The security checks' decisions on fixed data (pure ``evaluate``), and the certificate parser on real X.509."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tradeops.checks.base import CheckResult, Finding, Status
from tradeops.security.certificates import CertificateInventory, TlsCertificates, parse
from tradeops.security.drift import ConfigurationDrift, LiveObjects, last_writer, sha256
from tradeops.security.findings import FIXED, NEW, OPEN, classify
from tradeops.security.logins import FailedLogins, Failure, LoginActivity, parse_log_failures
from tradeops.security.network import NetworkPolicies, NetworkState, is_default_deny, open_to_all, selects
from tradeops.security.privileges import AccessState, Privileges

NOW = datetime(2026, 12, 1, 11, 0, tzinfo=UTC)


def certificate(host="feed.grandmodel.quantnova.com", days=200, *, rsa_bits=None, before_days=90, issuer=None):
    """A PEM certificate for ``host`` (and its CA's PEM), signed by ``issuer`` (key, name) or a CA of its own."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=400))
        .not_valid_after(NOW + timedelta(days=4000))
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(65537, rsa_bits) if rsa_bits else ec.generate_private_key(ec.SECP256R1())
    signer = issuer or ca_key
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(NOW - timedelta(days=before_days))
        .not_valid_after(NOW + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(signer, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return cert.public_bytes(pem), ca.public_bytes(pem)


def tls_result(config, *certs):
    return TlsCertificates().evaluate(CertificateInventory(list(certs), NOW), config)


def test_certificates_warn_then_turn_critical_then_expire(config):
    levels = {}
    for days in (200, 29, 6, -1):
        pem, ca = certificate(days=days)
        result = tls_result(config, parse("grandmodel/feed-tls", pem, ca))
        (finding,) = result.findings
        levels[days] = (finding.status, finding.critical)
    assert levels == {
        200: (Status.OK, False),
        29: (Status.WARN, False),
        6: (Status.FAIL, True),
        -1: (Status.FAIL, True),
    }


def test_not_yet_valid_weak_key_foreign_signature_and_uncovered_host_each_fail(config):
    from cryptography.hazmat.primitives.asymmetric import ec

    pem, ca = certificate(before_days=-2)
    (finding,) = tls_result(config, parse("ns/future", pem, ca)).findings
    assert finding.status is Status.FAIL and "not valid before" in finding.message

    pem, ca = certificate(rsa_bits=1024)
    (finding,) = tls_result(config, parse("ns/weak", pem, ca)).findings
    assert "weak key: RSA 1024 bits" in finding.message

    pem, ca = certificate(issuer=ec.generate_private_key(ec.SECP256R1()))  # names the CA, signed by another key
    (finding,) = tls_result(config, parse("ns/forged", pem, ca)).findings
    assert "its issuer's certificate did not sign it" in finding.message

    pem, ca = certificate(host="*.grandmodel.quantnova.com")
    served = ("api.grandmodel.quantnova.com", "a.b.grandmodel.quantnova.com", "grandmodel.quantnova.com")
    (finding,) = tls_result(config, parse("ns/wild", pem, ca, served)).findings
    # a wildcard covers exactly one leftmost label
    assert finding.message.endswith(
        "does not cover a.b.grandmodel.quantnova.com, grandmodel.quantnova.com (its Ingress)"
    )


def test_a_sound_certificate_passes_and_keeps_no_key_material(config):
    pem, ca = certificate()
    parsed = parse("grandmodel/feed-tls", pem, ca, ("feed.grandmodel.quantnova.com",))
    assert parsed.chain_verified is True and (parsed.key_type, parsed.key_bits) == ("EC", 256)
    result = tls_result(config, parsed)
    assert result.status is Status.OK and "BEGIN" not in repr(result)


def policy(name, namespace, spec):
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


def test_selectors_match_literally():
    labels = {"app": "execution-engine", "tier": "trading"}
    assert selects({}, labels) and selects(None, labels)
    assert selects({"matchLabels": {"app": "execution-engine"}}, labels)
    assert not selects({"matchLabels": {"app": "execution-*"}}, labels)  # no wildcard
    assert selects({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["trading"]}]}, labels)
    assert not selects({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["trading"]}]}, labels)
    assert selects({"matchExpressions": [{"key": "debug", "operator": "DoesNotExist"}]}, labels)
    assert not selects({"matchExpressions": [{"key": "tier", "operator": "Bogus"}]}, labels)


def test_default_deny_and_open_rules():
    assert is_default_deny(policy("d", "ns", {"podSelector": {}, "policyTypes": ["Ingress"]}))
    assert is_default_deny(policy("d", "ns", {"podSelector": {}}))  # policyTypes default to Ingress
    assert not is_default_deny(policy("d", "ns", {"podSelector": {}, "policyTypes": ["Egress"]}))
    assert not is_default_deny(policy("d", "ns", {"podSelector": {"matchLabels": {"a": "b"}}}))
    assert not is_default_deny(policy("d", "ns", {"podSelector": {}, "ingress": [{}]}))  # allows everything
    assert open_to_all({}) and open_to_all({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})
    assert not open_to_all({"from": [{"podSelector": {}}]})
    assert not open_to_all({"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]})


def test_network_policies_flag_a_missing_default_deny_and_an_open_trading_service(config):
    deny = policy("deny", "grandmodel", {"podSelector": {}, "policyTypes": ["Ingress"]})
    state = NetworkState(
        ["grandmodel", "grandmodel-research"],
        [
            deny,
            policy("open-exec", "grandmodel", {"podSelector": {"matchLabels": {"app": "execution-engine"}},
                                               "ingress": [{"ports": [{"port": 8080}]}]}),
            policy("gateway", "grandmodel", {"podSelector": {"matchLabels": {"app": "api-gateway"}}, "ingress": [{}]}),
        ],
        {"grandmodel/execution-engine": {"app": "execution-engine"},
         "grandmodel/tactical-marl": {"app": "tactical-marl"}},
    )  # fmt: skip
    result = NetworkPolicies().evaluate(state, config)
    bad = {f.id: f.critical for f in result.findings if f.status is Status.FAIL}
    assert bad == {
        "netpol:default-deny:grandmodel-research": False,
        "netpol:open:grandmodel/open-exec:execution-engine": True,
    }


def rbac(*bindings, roles=()):
    out = {"Role": [], "RoleBinding": [], "ClusterRole": list(roles), "ClusterRoleBinding": []}
    for kind, name, namespace, role_kind, role, subjects in bindings:
        meta = {"name": name, **({"namespace": namespace} if namespace else {})}
        out[kind].append({"metadata": meta, "roleRef": {"kind": role_kind, "name": role}, "subjects": subjects})
    return out


def cluster_role(name, *rules):
    return {"metadata": {"name": name}, "rules": list(rules)}


SA = {"kind": "ServiceAccount", "name": "deployer", "namespace": "grandmodel"}
DEPLOYER_RULE = {"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale", "replicasets"],
                 "verbs": ["get", "list", "watch", "patch", "update"]}  # fmt: skip


def test_least_privilege_is_literal_and_cluster_admin_only_for_the_allowed(config):
    exactly = AccessState(
        ["grandmodel"],
        rbac(("RoleBinding", "deployer", "grandmodel", "ClusterRole", "deploy", [SA]),
             roles=[cluster_role("deploy", DEPLOYER_RULE)]),
        {},
    )  # fmt: skip
    results = {f.id: f.status for f in Privileges().evaluate(exactly, config).findings}
    assert results["rbac:sa:grandmodel/deployer"] is Status.OK

    wildcard = {"apiGroups": ["apps"], "resources": ["*"], "verbs": ["get"]}
    wider = AccessState(
        ["grandmodel"],
        rbac(("RoleBinding", "deployer", "grandmodel", "ClusterRole", "deploy", [SA]),
             ("ClusterRoleBinding", "masters", None, "ClusterRole", "cluster-admin",
              [{"kind": "Group", "name": "system:masters"}]),
             ("ClusterRoleBinding", "ops", None, "ClusterRole", "cluster-admin", [{"kind": "User", "name": "ops"}]),
             roles=[cluster_role("deploy", DEPLOYER_RULE, wildcard)]),
        {"grandmodel/deployer": {"get secrets": False}},
    )  # fmt: skip
    findings = {f.id: f for f in Privileges().evaluate(wider, config).findings}
    deployer = findings["rbac:sa:grandmodel/deployer"]
    # resources "*" is a wildcard, not covered by the declared resources it would include
    assert deployer.status is Status.FAIL and deployer.critical and "get apps/*" in deployer.message
    assert findings["rbac:cluster-admin:ClusterRoleBinding/ops:User:ops"].critical
    assert not any("masters" in i for i in findings)  # system:masters is the allowed subject


def test_the_api_servers_answer_counts_even_when_rbac_objects_look_clean(config):
    state = AccessState(
        ["grandmodel"], rbac(), {"grandmodel/default": {"get secrets": True, "create pods/exec": False}}
    )
    (finding,) = [f for f in Privileges().evaluate(state, config).findings if f.id == "rbac:sa:grandmodel/default"]
    assert finding.status is Status.FAIL and finding.critical and "allows get secrets" in finding.message


def failures(user, source, n, start=NOW):
    return [Failure(start - timedelta(minutes=i), user, source) for i in range(n)]


def test_login_patterns_at_their_thresholds(config):
    policy = config.security.logins
    below = LoginActivity(
        failures("alice", "1.2.3.4", policy.brute_force_failures - 1)
        + [f for i in range(policy.spray_accounts - 1) for f in failures(f"u{i}", "5.6.7.8", 1)],
        [],
    )
    assert FailedLogins().evaluate(below, config).status is Status.OK
    at = LoginActivity(
        failures("alice", "1.2.3.4", policy.brute_force_failures)
        + [f for i in range(policy.spray_accounts) for f in failures(f"u{i}", "5.6.7.8", 1)],
        [("root", "9.9.9.9")],
        {"alice": [3] * 30},  # alice fails 3 times a day: 10 is under 5x her median, no anomaly
    )
    found = {f.id: (f.status, f.critical) for f in FailedLogins().evaluate(at, config).findings}
    assert found == {
        "login:brute-force:alice": (Status.FAIL, True),
        "login:spray:5.6.7.8": (Status.FAIL, True),
        "login:new-source:root:9.9.9.9": (Status.FAIL, False),
    }


def test_a_user_far_above_their_own_history_is_an_anomaly(config):
    quiet = LoginActivity(failures("bob", "10.20.0.2", 12, NOW), [], {"bob": [1, 2, 1, 2, 2]})
    found = {f.id: f.status for f in FailedLogins().evaluate(quiet, config).findings}
    assert found["login:anomaly:bob"] is Status.WARN


def test_failed_logins_are_parsed_from_timestamped_pod_logs():
    text = (
        "2026-12-01T10:59:00.000000000Z WARN auth FAILED_LOGIN user=user07 ip=203.0.113.9 reason=bad_password\n"
        "2026-12-01T10:59:07.000000000Z INFO auth login ok user=user08 ip=10.20.0.8\n"
    )
    assert parse_log_failures(text) == [Failure(datetime(2026, 12, 1, 10, 59, tzinfo=UTC), "user07", "203.0.113.9")]


def managed(manager, time, fields):
    return {"manager": manager, "operation": "Update", "time": time, "fieldsV1": fields}


def test_the_last_writer_of_a_field_is_the_newest_manager_that_owns_it():
    image = {"f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"app"}': {"f:image": {}}}}}}}
    obj = {
        "metadata": {
            "managedFields": [
                managed("helm", "2026-11-01T00:00:00Z", image),
                managed("kubectl-set", "2026-11-30T09:00:00Z", image),
                managed("kube-controller-manager", "2026-12-01T00:00:00Z", {"f:status": {}}),
            ]
        }
    }
    path = ["f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"app"}', "f:image"]
    assert last_writer(obj, path)["manager"] == "kubectl-set"
    assert last_writer(obj, ["f:spec", "f:replicas"]) is None


def deployment(d, image=None, replicas=None, config=None):
    container = {"name": d.container_name, "image": image or d.image}
    if config is not None:  # as the API server returns it: with the declared resources
        container["resources"] = config.kubernetes.resources_of(d).manifest()
    return {
        "metadata": {"name": d.name, "namespace": d.namespace},
        "spec": {
            "replicas": d.replicas.off_hours if replicas is None else replicas,
            "template": {"spec": {"containers": [container]}},
        },
    }


@pytest.mark.parametrize(
    ("market_hours", "replicas", "drifted"), [(False, 3, True), (True, 3, False), (None, 3, False), (None, 2, True)]
)
def test_replicas_follow_the_time_of_day(config, market_hours, replicas, drifted):
    tactical = config.kubernetes.deployment("tactical-marl")  # market hours 3, off hours 1
    live = [
        deployment(d, replicas=replicas if d is tactical else None, config=config)
        for d in config.kubernetes.deployments
    ]
    data = LiveObjects(live, [], {}, market_hours, {}, [])
    found = {f.id for f in ConfigurationDrift().evaluate(data, config).findings if f.status is Status.FAIL}
    others = {f for f in found if "tactical-marl" not in f and market_hours}
    assert ("drift:deployment:grandmodel/tactical-marl:replicas" in found) is drifted
    # in market hours every other scaled deployment at its off-hours count is drift too
    assert all(f.endswith(":replicas") for f in others)


def test_config_maps_against_the_baseline_name_the_key(config):
    cm = {"metadata": {"name": "feed", "namespace": "grandmodel"}, "data": {"feeds": "CME", "extra": "1"}}
    unknown = {"metadata": {"name": "new", "namespace": "grandmodel"}, "data": {}}
    baseline = {"grandmodel/feed": {"feeds": sha256("CME,ICE")}, "grandmodel/gone": {"a": sha256("b")}}
    data = LiveObjects([], [cm, unknown], {}, None, baseline, [])
    found = {f.id: f for f in ConfigurationDrift()._config_maps(data)}
    assert found["drift:configmap:grandmodel/feed:feeds"].details["live"] == "CME"
    assert found["drift:configmap:grandmodel/feed:extra"].details["expected"] == "absent"
    assert found["drift:configmap:grandmodel/gone"].status is Status.FAIL
    assert found["drift:configmap:grandmodel/new"].status is Status.WARN


def result(name, *findings, reachable=True):
    return CheckResult(name, name, Status.FAIL, "", findings=tuple(findings), reachable=reachable)


def fail(finding_id):
    return Finding(finding_id, Status.FAIL, finding_id)


def previous(*ids, check="privileges"):
    return {
        i: {
            "check_name": check,
            "level": "fail",
            "message": i,
            "critical": False,
            "first_seen_at": NOW,
            "incident_id": 7,
        }
        for i in ids
    }


def test_findings_are_new_still_open_or_fixed():
    tracked = classify({"privileges": result("privileges", fail("a"), fail("b"))}, previous("b", "c"), NOW)
    assert {t.id: t.state for t in tracked} == {"a": NEW, "b": OPEN, "c": FIXED}
    assert {t.id: t.incident_id for t in tracked} == {"a": None, "b": 7, "c": 7}


def test_a_check_that_could_not_look_fixes_nothing():
    down = result("privileges", reachable=False)
    assert classify({"privileges": down}, previous("b"), NOW) == []
    assert classify({}, previous("b"), NOW) == []  # the check did not run at all


def test_critical_and_high_vulnerabilities_block_medium_and_low_are_counted(config):
    from tradeops.security.vulnerabilities import ScanReport, VulnerabilityScan

    images = {"reg/a:1": ["grandmodel/a"], "reg/b:2": ["grandmodel/b", "grandmodel/c"]}
    vulns = [
        {"image": "reg/a:1", "id": "CVE-1", "severity": "critical"},
        {"image": "reg/b:2", "id": "CVE-2", "severity": "HIGH"},
        {"image": "reg/b:2", "id": "CVE-3", "severity": "medium"},
    ]
    result = VulnerabilityScan().evaluate(ScanReport(images, vulns), config)
    assert {f.id: f.critical for f in result.findings} == {"vuln:reg/a:1:CVE-1": True, "vuln:reg/b:2:CVE-2": False}
    assert result.findings[1].details["deployments"] == "grandmodel/b, grandmodel/c"
    clean = VulnerabilityScan().evaluate(ScanReport(images, vulns[2:]), config)
    assert (clean.status, clean.summary) == (Status.OK, "2 images scanned, nothing blocking (1 medium)")


def test_a_401_403_spike_against_the_rate_before_it(config):
    from tradeops.security.gateway import AccessLog, GatewayAuthErrors, parse_access_lines

    line = "2026-12-01T10:58:00.000000000Z INFO access method=POST path=/v1/orders status=401 client=198.51.100.4"
    assert parse_access_lines(line + "\nINFO heartbeat") == [(datetime(2026, 12, 1, 10, 58, tzinfo=UTC), 401)]

    def log(recent_denied, recent_total=100, before_denied=10, before_total=100):
        recent = [(NOW - timedelta(minutes=1), 401 if i < recent_denied else 200) for i in range(recent_total)]
        before = [(NOW - timedelta(minutes=30), 403 if i < before_denied else 200) for i in range(before_total)]
        return AccessLog(NOW, {"grandmodel/api-gateway": recent + before})

    check = GatewayAuthErrors()
    assert check.evaluate(log(30), config).status is Status.FAIL  # 30 % against 10 %
    assert check.evaluate(log(29), config).status is Status.OK  # under 3x
    assert check.evaluate(log(19, recent_total=30, before_denied=1), config).status is Status.OK  # under 20 errors
    assert check.evaluate(log(30, before_total=0), config).status is Status.OK  # no rate before: nothing to compare


def gateway_log(recent_denied, recent_total=400, before_denied=0, before_total=100, history=()):
    """An access log read at NOW: ``recent_total`` requests in the last minutes, ``before_total`` half an hour
    earlier, and ``history`` stored days (the denied of 1000 requests each, yesterday first)."""
    from tradeops.security.gateway import AccessLog, DailyAnswers

    recent = [(NOW - timedelta(minutes=1), 401 if i < recent_denied else 200) for i in range(recent_total)]
    before = [(NOW - timedelta(minutes=30), 403 if i < before_denied else 200) for i in range(before_total)]
    days = [DailyAnswers(NOW.date() - timedelta(days=n + 1), 1000, denied) for n, denied in enumerate(history)]
    return AccessLog(NOW, {"grandmodel/api-gateway": recent + before}, {"grandmodel/api-gateway": days})


def test_a_401_403_spike_against_the_median_of_the_previous_days(config):
    from tradeops.security.gateway import GatewayAuthErrors

    week = (10, 20, 20, 30, 400, 20, 10)  # 1-3 % a day, and one day of 40 %: the median is 2 %
    # 7 % now is a spike against the days' 2 %, though not against the 30 % earlier in the logs.
    result = GatewayAuthErrors().evaluate(gateway_log(28, before_denied=30, history=week), config)
    assert result.status is Status.FAIL
    (finding,) = result.findings
    assert finding.message == (
        "grandmodel/api-gateway: 28 of 400 requests denied (401/403) in the last 10 min, 7.0 % against 2.0 % "
        "(previous 7 days (median))"
    )
    assert {k: finding.details[k] for k in ("baseline", "baseline_pct", "days_of_history", "recent_pct")} == {
        "baseline": "previous 7 days (median)",
        "baseline_pct": 2.0,
        "days_of_history": 7,
        "recent_pct": 7.0,
    }
    assert GatewayAuthErrors().evaluate(gateway_log(23, history=week), config).status is Status.OK  # 5.75 %: < 3x
    assert GatewayAuthErrors().evaluate(gateway_log(28, history=week[:3]), config).status is Status.FAIL  # 3 days do


def test_a_day_at_its_usual_rate_is_ok(config):
    from tradeops.security.gateway import GatewayAuthErrors

    usual = gateway_log(10, before_denied=1, history=(10, 20, 20, 30, 20, 20, 10))  # 2.5 % against 2 %
    result = GatewayAuthErrors().evaluate(usual, config)
    assert result.status is Status.OK
    assert result.summary == (
        "401/403 rate within its baseline: grandmodel/api-gateway 2.5 % (baseline 2.0 %, previous 7 days (median))"
    )


def test_with_too_little_history_the_baseline_is_the_rate_earlier_in_the_logs(config):
    from tradeops.security.gateway import GatewayAuthErrors

    # 7 % against the 2 % of the two stored days would be a spike; against the 10 % earlier in the logs it is not.
    calm = GatewayAuthErrors().evaluate(gateway_log(28, before_denied=10, history=(20, 20)), config)
    assert calm.status is Status.OK
    assert {k: calm.findings[0].details[k] for k in ("baseline", "baseline_pct", "days_of_history")} == {
        "baseline": "earlier in today's logs",
        "baseline_pct": 10.0,
        "days_of_history": 2,
    }
    spike = GatewayAuthErrors().evaluate(gateway_log(40, before_denied=2, history=(20, 20)), config)
    assert spike.status is Status.FAIL and spike.summary.endswith("10.0 % against 2.0 % (earlier in today's logs)")


def test_only_the_days_a_pods_log_holds_whole_are_counted():
    from tradeops.security.gateway import DailyAnswers, whole_days

    def at(day, hour):
        return datetime(2026, 11, day, hour, tzinfo=UTC)

    # The 27th is the first pod's first day, partly rotated away; the 28th the second's; today is not over.
    since_the_27th = [(at(27, 15), 200), (at(28, 1), 401), (at(28, 23), 200), (at(29, 12), 200), (NOW, 403)]
    since_the_28th = [(at(28, 9), 403), (at(29, 8), 403), (at(29, 20), 200)]
    assert whole_days([since_the_27th, since_the_28th, []], NOW.date()) == [
        DailyAnswers(at(28, 0).date(), 2, 1),
        DailyAnswers(at(29, 0).date(), 3, 1),
    ]


def test_collect_stores_the_whole_days_once_and_reads_them_back(airflow_connections, state_dsn, config):
    """Against the sandbox, whose gateway logs span 8 days: the 7 whole ones before today are stored, a second
    collect leaves them as they are, and the stored history (not the log) is what comes back."""
    from tradeops.incidents import store
    from tradeops.security.gateway import DailyAnswers, GatewayAuthErrors, record_days

    gateway = "grandmodel/api-gateway"
    today = datetime.now(UTC).date()
    with store.connect(state_dsn) as conn:
        conn.execute("DELETE FROM tradeops.gateway_auth_daily WHERE gateway = %s", (gateway,))
        # Outside the 7 days looked back on: stored, never read back.
        record_days(conn, gateway, [DailyAnswers(today - timedelta(days=8), 10, 9)])

    def stored():
        with store.connect(state_dsn) as conn:
            rows = conn.execute(
                "SELECT day, requests, denied FROM tradeops.gateway_auth_daily WHERE gateway = %s ORDER BY day",
                (gateway,),
            )
            return [DailyAnswers(r["day"], r["requests"], r["denied"]) for r in rows]

    first = GatewayAuthErrors().collect(config)
    days = stored()
    assert [d.day for d in days] == [today - timedelta(days=n) for n in range(8, 0, -1)]
    assert first.history[gateway] == days[1:]
    assert all(d.requests > 0 and 0.01 <= d.denied_share <= 0.03 for d in days[1:])

    second = GatewayAuthErrors().collect(config)
    assert stored() == days and second.history == first.history  # an upsert: nothing counted twice

    with store.connect(state_dsn) as conn:  # a reading that saw less of a day does not replace a fuller one
        record_days(conn, gateway, [DailyAnswers(days[1].day, 1, 1)])
    assert stored() == days

    result = GatewayAuthErrors().evaluate(second, config)
    assert result.status is Status.FAIL
    assert (result.findings[0].details["baseline"], result.findings[0].details["days_of_history"]) == (
        "previous 7 days (median)",
        7,
    )
