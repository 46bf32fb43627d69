"""Who an emergency rollback is by: the authenticated user who triggered it (a child run inherits its parent's),
the automatic rollback policy for a run it triggered from a scheduled runbook, and nobody otherwise (refused)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from tradeops.rollback.operators import AUTOMATIC, actor


def context(user: str | None, run_type: str) -> dict:
    return {"dag_run": SimpleNamespace(triggering_user_name=user, run_type=run_type)}


def test_the_person_who_triggered_it_even_through_a_runbook_they_started():
    assert actor(context("alice", "manual")) == "alice"
    assert actor(context("alice", "operator_triggered")) == "alice"


def test_the_policy_when_a_scheduled_runbook_triggered_it():
    assert actor(context(None, "operator_triggered")) == AUTOMATIC


def test_a_manual_run_without_an_authenticated_user_is_refused():
    with pytest.raises(AirflowFailException, match="no triggering user"):
        actor(context(None, "manual"))
