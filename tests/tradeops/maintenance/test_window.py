"""The weekly maintenance window on a frozen clock: Sunday 02:00-04:00 New York time, never while XNYS is open,
break-glass only with a reason; and the guard that abandons the steps left once it has closed."""

from __future__ import annotations

import types
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from tradeops.exceptions import WindowClosed
from tradeops.maintenance.operators import WINDOW_END_KEY, abandon_after_window
from tradeops.maintenance.window import MaintenanceWindow

NY = ZoneInfo("America/New_York")
SUNDAY_2AM = {"anchor": "clock", "at": "02:00", "days": ["sun"]}


@pytest.fixture(scope="module")
def window():
    return MaintenanceWindow(SUNDAY_2AM, timedelta(hours=2), "XNYS")


def ny(*args) -> datetime:
    return datetime(*args, tzinfo=NY).astimezone(UTC)


def test_inside_the_window_work_is_admitted_until_it_closes(window):
    admitted = window.admit(ny(2026, 11, 22, 2, 30))
    assert (admitted.start, admitted.end) == (ny(2026, 11, 22, 2, 0), ny(2026, 11, 22, 4, 0))
    assert window.admit(ny(2026, 11, 22, 3, 59)).end == ny(2026, 11, 22, 4, 0)


@pytest.mark.parametrize(
    "moment, reason",
    [
        (ny(2026, 11, 22, 1, 59), "outside the maintenance window"),
        (ny(2026, 11, 22, 4, 0), "outside the maintenance window"),
        (ny(2026, 11, 21, 2, 30), "outside the maintenance window"),  # a Saturday
        (ny(2026, 11, 23, 10, 0), "XNYS is open"),
    ],
)
def test_outside_the_window_or_while_the_market_is_open_it_refuses(window, moment, reason):
    with pytest.raises(WindowClosed, match=reason):
        window.admit(moment)


def test_the_refusal_says_when_the_next_window_opens(window):
    with pytest.raises(WindowClosed, match=r"next opens 2026-11-29 07:00 UTC"):
        window.admit(ny(2026, 11, 23, 10, 0))


def test_the_window_follows_daylight_saving_time(window):
    # 2026-03-08 is the spring-forward Sunday: 02:00 does not exist, the window opens at 03:00 EDT (07:00 UTC).
    assert window.admit(ny(2026, 3, 8, 3, 30)).start == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    # In summer, 02:00 EDT is 06:00 UTC.
    assert window.admit(ny(2026, 7, 12, 2, 15)).start == datetime(2026, 7, 12, 6, 0, tzinfo=UTC)


def test_break_glass_needs_a_reason_and_opens_an_ad_hoc_window(window):
    now = ny(2026, 11, 23, 10, 0)
    with pytest.raises(WindowClosed, match="break-glass needs a reason"):
        window.admit(now, break_glass=True, reason="  ")
    forced = window.admit(now, break_glass=True, reason="CVE hotfix, approved by the CTO")
    assert (forced.start, forced.end) == (now, now + timedelta(hours=2))


def _context(window_end: str | None):
    ti = types.SimpleNamespace(
        xcom_pull=lambda task_ids, key: window_end if (task_ids, key) == ("enter_window", WINDOW_END_KEY) else None
    )
    return {"ti": ti}


def test_a_step_starting_after_the_window_closed_is_abandoned():
    closed = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    with pytest.raises(AirflowSkipException, match="remaining steps abandoned"):
        abandon_after_window(_context(closed))
    with pytest.raises(AirflowSkipException, match="never entered"):
        abandon_after_window(_context(None))
    abandon_after_window(_context((datetime.now(UTC) + timedelta(minutes=5)).isoformat()))  # still open: runs
