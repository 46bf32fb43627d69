"""Links into the Airflow UI for messages and reports."""

from __future__ import annotations

from urllib.parse import quote


def airflow_base_url() -> str:
    from airflow.sdk.configuration import conf

    return conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")


def run_url(dag_id: str, run_id: str) -> str:
    return f"{airflow_base_url()}/dags/{quote(dag_id)}/runs/{quote(run_id)}"
