"""The weekly window's platform-side steps against the sandbox: TLS certificates read from its Kubernetes API (as
TradeOps' own service account), log cleanup and the security scan through its platform API."""

from __future__ import annotations

import types

import pytest
from airflow.sdk.exceptions import AirflowFailException

from tradeops.operators.maintenance import CertificateExpiryOperator, PlatformMaintenanceOperator


@pytest.fixture
def context(airflow_connections):
    pushed: dict[str, object] = {}
    ti = types.SimpleNamespace(dag_id="weekly_maintenance", run_id="manual__test", task_id="step",
                               xcom_push=lambda key, value: pushed.__setitem__(key, value))
    return {"ti": ti, "pushed": pushed}


def test_certificates_expiring_soon_fail_the_check_and_name_the_secrets(context):
    with pytest.raises(AirflowFailException, match="expire within 21 days") as failure:
        CertificateExpiryOperator(task_id="certificate_check", min_days=21).execute(context)
    message = str(failure.value)
    # The sandbox seeds certificates with 200, 21, 5, -3 (expired) and 90 days left.
    assert "grandmodel/data-feed-client-tls" in message and "grandmodel/legacy-admin-tls" in message
    assert "api-gateway-tls" not in message and "prometheus-tls" not in message
    result = context["pushed"]["check_result"]
    assert result["status"] == "fail" and len(result["details"]["certificates"]) == 5
    assert "BEGIN" not in str(result), "no PEM material in the result"


def test_only_an_expired_certificate_fails_a_one_day_horizon(context):
    with pytest.raises(AirflowFailException, match=r"^1 of 5 certificates expire within 1 days: "
                                                   r"grandmodel/legacy-admin-tls \(-3.0 d\)$"):
        CertificateExpiryOperator(task_id="certificate_check", min_days=1).execute(context)


def test_log_cleanup_previews_then_deletes_only_indices_older_than_the_retention(context):
    def cleanup(dry_run: bool, run_id: str) -> dict:
        ti = types.SimpleNamespace(**{**vars(context["ti"]), "run_id": run_id})
        return PlatformMaintenanceOperator(task_id="log_cleanup", path="/v1/maintenance/logs/cleanup",
                                           payload={"older_than_days": 7, "dry_run": dry_run}).execute({"ti": ti})

    preview = cleanup(True, "preview")
    assert preview["would_delete"], "the sandbox keeps 45 days of daily indices"
    done = cleanup(False, "real")
    assert done["deleted"] == preview["would_delete"] and done["kept"] == 8  # today and the 7 days before
    assert cleanup(True, "again")["would_delete"] == []


def test_a_critical_scan_finding_fails_the_step(context, sandbox):
    image = "registry.quantnova.internal/grandmodel/risk-management:3.1.0"
    scan = PlatformMaintenanceOperator(task_id="security_scan", path="/v1/security/scan",
                                       payload={"images": [image], "fail_on": ["critical"]})
    assert scan.execute(context)["blocking"] == []
    sandbox.set_faults("platform_api", unhealthy=[f"scan:{image}"])
    with pytest.raises(AirflowFailException, match="1 blocking finding"):
        scan.execute(context)
