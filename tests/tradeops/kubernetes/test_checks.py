"""The certificate-expiry check: its verdicts on fixed certificates (pure), and run as a task against the sandbox's
TLS secrets, read as TradeOps' own service account, without ever holding key material."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from airflow.sdk.exceptions import AirflowFailException

from tradeops.checks.base import Status
from tradeops.checks.operators import CheckOperator
from tradeops.exceptions import CheckFailed
from tradeops.kubernetes.checks import Certificate, CertificateExpiry, Certificates

NOW = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)


@pytest.fixture
def context(task_context, recheck_after):
    recheck_after("0s")  # a failing check looks again at once (the pause is tested in tests/tradeops/checks)
    return task_context("certificate_check")


def certificates(**days_left: float) -> Certificates:
    return Certificates(
        [
            Certificate(f"grandmodel/{name.replace('_', '-')}", f"CN={name}", NOW + timedelta(days=days))
            for name, days in days_left.items()
        ],
        read_at=NOW,
    )


def test_each_certificate_is_a_finding_named_by_its_secret(config):
    # 20.99 days left is under 21, though it shows as 21.0.
    result = CertificateExpiry(min_days=21).evaluate(certificates(api_tls=200, feed_tls=20.99, old_tls=-3), config)
    assert result.status is Status.FAIL
    assert result.summary == (
        "2 of 3 certificates expire within 21 days: grandmodel/feed-tls (21.0 d), grandmodel/old-tls (-3.0 d)"
    )
    assert {f.id: f.status for f in result.findings} == {
        "secret:grandmodel/api-tls": Status.OK,
        "secret:grandmodel/feed-tls": Status.FAIL,
        "secret:grandmodel/old-tls": Status.FAIL,
    }
    assert result.action
    valid = CertificateExpiry(min_days=21).evaluate(certificates(api_tls=21), config)
    assert (valid.status, valid.summary, valid.action) == (Status.OK, "1 certificates valid for 21+ days", "")


def test_certificates_expiring_soon_fail_the_check_and_name_the_secrets(context):
    with pytest.raises(AirflowFailException, match="expire within 21 days") as failure:  # final: no retry
        CheckOperator(task_id="certificate_check", check=CertificateExpiry(min_days=21)).execute(context)
    message = str(failure.value)
    # The sandbox seeds certificates with 200, 21, 5, -3 (expired) and 90 days left.
    assert "grandmodel/data-feed-client-tls" in message and "grandmodel/legacy-admin-tls" in message
    assert "api-gateway-tls" not in message and "prometheus-tls" not in message
    result = context["pushed"]["check_result"]
    assert result["status"] == "fail" and len(result["details"]["certificates"]) == 5
    assert len(result["findings"]) == 5 and all(f["id"].startswith("secret:") for f in result["findings"])
    assert "BEGIN" not in str(result), "no PEM material in the result"


def test_only_an_expired_certificate_fails_a_one_day_horizon(context):
    with pytest.raises(
        AirflowFailException,
        match=r"^TLS certificates: 1 of 5 certificates expire within 1 days: "
        r"grandmodel/legacy-admin-tls \(-3.0 d\)$",
    ):
        CheckOperator(task_id="certificate_check", check=CertificateExpiry(min_days=1)).execute(context)


def test_what_is_collected_holds_no_key_material(airflow_connections, config):
    collected = CertificateExpiry(min_days=21).collect(config)
    assert len(collected.certificates) == 5
    assert "BEGIN" not in repr(collected) and "PRIVATE" not in repr(collected)


def test_an_unreachable_kubernetes_api_is_retried(context, config, monkeypatch):
    name = "AIRFLOW_CONN_" + config.connections.kubernetes.upper()
    monkeypatch.setenv(name, '{"conn_type": "kubernetes", "extra": {"kube_config_path": "/nonexistent/kubeconfig"}}')
    with pytest.raises(CheckFailed, match="could not check"):
        CheckOperator(task_id="certificate_check", check=CertificateExpiry(min_days=21)).execute(context)
    assert context["pushed"]["check_result"]["reachable"] is False
