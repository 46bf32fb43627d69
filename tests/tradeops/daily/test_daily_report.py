"""The end of a trading day as data: the session a run closes out (early closes and holidays from the exchange
calendar), the window its trades are counted in, and the end-of-day message."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from tradeops.calendar.sessions import sessions_for
from tradeops.daily.report import Step, closed_session, end_of_day_message, step_details, trading_window


@pytest.fixture(scope="module")
def xnys():
    return sessions_for("XNYS")


def test_the_run_after_an_early_close_closes_out_that_session(xnys):
    # Friday after Thanksgiving 2026: the close is 13:00 ET, the run 13:30 ET (18:30 UTC).
    session = closed_session(xnys, datetime(2026, 11, 27, 18, 30, tzinfo=UTC))
    assert session.day == date(2026, 11, 27) and session.early_close
    assert session.close == datetime(2026, 11, 27, 18, 0, tzinfo=UTC)


def test_a_manual_run_on_a_holiday_closes_out_the_session_before(xnys):
    assert closed_session(xnys, datetime(2026, 11, 26, 17, 0, tzinfo=UTC)).day == date(2026, 11, 25)  # Thanksgiving


def test_trades_count_from_the_open_until_the_next_session_opens(xnys):
    session = xnys.session_on(date(2026, 11, 25))
    since, until = trading_window(xnys, session)
    assert since == datetime(2026, 11, 25, 14, 30, tzinfo=UTC)
    assert until == datetime(2026, 11, 27, 14, 30, tzinfo=UTC)  # Thanksgiving skipped


RESULTS = {
    "close_positions": {"closed": 10, "orders": [], "rejected": [], "session_date": "2026-11-27"},
    "trading_report": {"trades": 42, "contracts": 310.0, "notional": 1234567.891, "realized_pnl": -1520.5},
    "backup": {"id": "20261127T183500Z", "bytes": 5 * 1024 * 1024},
    "scale_down": [
        {"deployment": "tactical-marl", "from": 3, "to": 1, "changed": True},
        {"deployment": "data-pipeline", "from": 1, "to": 1, "changed": False},
    ],
    "monitoring_mode": {"mode": "off-hours", "previous": "trading-hours", "changed": True},
    "log_archive": {"name": "grandmodel-logs-2026.11.27.tar.zst", "bytes": 18_000_000, "sha256": "ab" * 32},
    "store_daily_metrics": {"session_date": "2026-11-27"},
    "diagnostics": {"files": 12, "bytes": 2048},
}


def test_each_step_gets_a_line_of_what_it_did():
    lines = step_details(RESULTS)
    assert lines["close_positions"] == "10 position(s) closed, none left open"
    assert lines["trading_report"] == "42 trades, 310 contracts, notional $1,234,567.89, realised P&L $-1,520.50"
    assert lines["backup"] == "20261127T183500Z (5.0 MB, verified)"
    assert lines["scale_down"] == "tactical-marl 3→1"
    assert lines["log_archive"].startswith("grandmodel-logs-2026.11.27.tar.zst (17.2 MB, sha256 abababababab")
    assert lines["diagnostics"] == "12 files, 2.0 KB"
    assert lines["monitoring_mode"] == "off-hours (was trading-hours)"


def test_positions_left_open_are_named():
    lines = step_details({"still_open": [{"symbol": "ES", "qty": 3.0}, {"symbol": "CL", "qty": -2.0}]})
    assert lines["close_positions"] == "STILL OPEN: ES 3, CL -2"


def test_the_message_says_complete_only_when_every_step_succeeded(xnys):
    session = xnys.session_on(date(2026, 11, 27))
    steps = [Step("close_positions", "Positions closed", "success", "10 closed"), Step("backup", "Backup", "success")]
    text, blocks, failed = end_of_day_message(session, "XNYS", steps, "http://airflow/run")
    assert failed == []
    assert text == "🟢 End of day Fri 2026-11-27 XNYS (early close): complete"
    assert "✅ *Positions closed*: 10 closed" in blocks[2]["text"]["text"]


def test_the_message_says_failed_when_the_close_out_failed_and_names_what_did_not_run(xnys):
    session = xnys.session_on(date(2026, 11, 25))
    steps = [
        Step("close_positions", "Positions closed", "failed", "STILL OPEN: ES 3"),
        Step("scale_down", "Scaled to off-hours", "upstream_failed"),
        Step("backup", "Backup", "success"),
    ]
    text, blocks, failed = end_of_day_message(session, "XNYS", steps, "http://airflow/run")
    assert failed == ["close_positions", "scale_down"]
    assert "complete" not in text
    assert text == "🔴 End of day Wed 2026-11-25 XNYS: FAILED (close_positions, scale_down)"
    body = blocks[2]["text"]["text"]
    assert "❌ *Positions closed*: STILL OPEN: ES 3" in body and "⛔ *Scaled to off-hours*: upstream failed" in body
