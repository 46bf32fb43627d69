"""The window's gate: it refuses to start outside the window, lets a reasoned break-glass through, and leaves the
window's end for the guarded steps."""

from __future__ import annotations

import types
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from airflow.sdk.exceptions import AirflowFailException

from tradeops.maintenance.operators import GATE_TASK_ID, WINDOW_END_KEY, EnterMaintenanceWindowOperator

LENGTH = timedelta(minutes=1)


@pytest.fixture
def context():
    pushed: dict[str, object] = {}
    ti = types.SimpleNamespace(xcom_push=lambda key, value: pushed.__setitem__(key, value))
    return {"ti": ti, "pushed": pushed}


def gate(**params) -> EnterMaintenanceWindowOperator:
    """A gate whose one-minute window opens every day twelve hours from now: closed now, whatever the time."""
    opens = (datetime.now(ZoneInfo("America/New_York")) + timedelta(hours=12)).strftime("%H:%M")
    return EnterMaintenanceWindowOperator(
        task_id=GATE_TASK_ID, schedule={"anchor": "clock", "at": opens}, length=LENGTH, exchange="XNYS", **params
    )


def test_outside_the_window_the_gate_refuses_and_opens_nothing(context):
    with pytest.raises(AirflowFailException, match="refusing to start: outside the maintenance window"):
        gate().execute(context)
    assert context["pushed"] == {}


def test_break_glass_with_a_reason_opens_a_window_and_leaves_its_end(context):
    opened = gate(break_glass_reason="CVE hotfix, approved by the CTO").execute(context)
    start, end = datetime.fromisoformat(opened["start"]), datetime.fromisoformat(opened["end"])
    assert end - start == LENGTH and opened["break_glass"] is True
    assert context["pushed"] == {WINDOW_END_KEY: opened["end"]}


def test_a_blank_break_glass_reason_is_refused_never_taken_for_no_break_glass(context):
    with pytest.raises(AirflowFailException, match="break-glass needs a reason"):
        gate(break_glass_reason="  ").execute(context)
    assert context["pushed"] == {}
