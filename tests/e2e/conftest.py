"""One real Airflow stack (scheduler, dag-processor, triggerer, api-server + sandbox) for all end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.stack import LocalStack

PROBE_DAGS = sorted((Path(__file__).parent / "dags").glob("*.py"))


@pytest.fixture(scope="session")
def stack(run_dir):
    with LocalStack(run_dir("stack"), auto_ports=True, extra_dag_files=PROBE_DAGS, log=lambda message: None,
                    extra_env={"AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2"}) as running:
        yield running
