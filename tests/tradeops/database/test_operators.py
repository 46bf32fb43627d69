"""The database operators outside a DAG, against a copy of the platform database (the DAG runs are in
test_dags.py)."""

from __future__ import annotations

import types

import pytest
from airflow.sdk.exceptions import AirflowFailException

from tradeops.database import backup
from tradeops.database.operators import BackupOperator, TableUpkeepOperator


def task_context(pushed: dict) -> dict:
    return {"ti": types.SimpleNamespace(task_id="backup", xcom_push=lambda key, value: pushed.__setitem__(key, value))}


def test_a_backup_pushes_its_check_result_and_returns_what_it_backed_up(platform_connection, tmp_path, monkeypatch):
    monkeypatch.setenv("TRADEOPS_BACKUP_DIR", str(tmp_path / "backups"))
    pushed: dict = {}

    taken = BackupOperator(task_id="backup", restore_check="never").execute(task_context(pushed))

    [(folder, manifest)] = backup.backups(tmp_path / "backups")
    assert taken == {
        "id": manifest["id"],
        "path": str(folder),
        "bytes": manifest["bytes"],
        "seconds": manifest["seconds"],
        "restore_check": None,
        "pruned": [],
    }
    result = pushed["check_result"]
    assert (result["name"], result["status"]) == ("backup", "ok")
    assert result["summary"].startswith(f"{manifest['id']}: ") and "TOC entries verified" in result["summary"]
    assert "restore_check" not in manifest, "never: no restore check"


def test_a_bad_restore_check_fails_before_anything_is_done(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADEOPS_BACKUP_DIR", str(tmp_path / "backups"))
    pushed: dict = {}
    with pytest.raises(AirflowFailException, match="restore_check must be due, always or never, got 'sometimes'"):
        BackupOperator(task_id="backup", restore_check="sometimes").execute(task_context(pushed))
    assert pushed == {} and not (tmp_path / "backups").exists()


def test_an_unknown_upkeep_step_is_refused_when_the_dag_is_parsed():
    with pytest.raises(ValueError, match="step must be one of"):
        TableUpkeepOperator(task_id="x", table="trades", step="cluster")
