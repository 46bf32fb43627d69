"""The weekly window's platform-side steps against the sandbox: log cleanup and the security scan through its
platform API."""

from __future__ import annotations

import types

import pytest
from airflow.sdk.exceptions import AirflowFailException

from tradeops.platform.operators import PlatformMaintenanceOperator


@pytest.fixture
def context(task_context):
    return task_context("step")


def test_log_cleanup_previews_then_deletes_only_indices_older_than_the_retention(context):
    def cleanup(dry_run: bool, run_id: str) -> dict:
        ti = types.SimpleNamespace(**{**vars(context["ti"]), "run_id": run_id})
        return PlatformMaintenanceOperator(
            task_id="log_cleanup",
            path="/v1/maintenance/logs/cleanup",
            payload={"older_than_days": 7, "dry_run": dry_run},
        ).execute({"ti": ti})

    preview = cleanup(True, "preview")
    assert preview["would_delete"], "the sandbox keeps 45 days of daily indices"
    done = cleanup(False, "real")
    assert done["deleted"] == preview["would_delete"] and done["kept"] == 8  # today and the 7 days before
    assert cleanup(True, "again")["would_delete"] == []


def test_a_critical_scan_finding_fails_the_step(context, sandbox):
    image = "registry.quantnova.internal/grandmodel/risk-management:3.1.0"
    scan = PlatformMaintenanceOperator(
        task_id="security_scan", path="/v1/security/scan", payload={"images": [image], "fail_on": ["critical"]}
    )
    assert scan.execute(context)["blocking"] == []
    sandbox.set_faults("platform_api", unhealthy=[f"scan:{image}"])
    with pytest.raises(AirflowFailException, match="1 blocking finding"):
        scan.execute(context)
