"""The end of a trading day, as plain data: which session a post-market run closes out, the window its trades are
counted in, and the end-of-day message built from what each step of the run did. No I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tradeops.calendar.sessions import Session, SessionTable

DONE_STATES = ("success",)
FAILED_STATES = ("failed", "upstream_failed")
STATE_EMOJI = {"success": "✅", "failed": "❌", "upstream_failed": "⛔", "skipped": "⏭️"}


def closed_session(table: SessionTable, run_after: datetime) -> Session:
    """The session a post-market run closes out: the last one opened at or before the run's moment (a scheduled run
    at close + 30m, a manual one on a Saturday: Friday's)."""
    return table.current_or_previous(run_after)


def trading_window(table: SessionTable, session: Session) -> tuple[datetime, datetime]:
    """Where the session's trades are counted: from its open until the next session opens, so the close-out's own
    flattening orders (after the close) belong to the day they close, and a re-run counts the same trades."""
    following = table.next_session(session.day + timedelta(days=1))
    return session.open, following.open


@dataclass(frozen=True)
class Step:
    """One step of the run as the end-of-day report shows it: its task, label, state and a line of detail."""

    task_id: str
    label: str
    state: str
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.state in FAILED_STATES


def _size(value: float | None) -> str:
    if value is None:
        return "?"
    unit = "B"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1024 or unit == "GB":
            break
        value /= 1024
    return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"


def step_details(results: Mapping[str, Any]) -> dict[str, str]:
    """A line per task id from the tasks' return values (missing values: no line)."""
    lines: dict[str, str] = {}
    if close := results.get("close_positions"):
        lines["close_positions"] = f"{close['closed']} position(s) closed, none left open"
    elif still_open := results.get("still_open"):
        named = ", ".join(f"{p['symbol']} {p['qty']:g}" for p in still_open)
        lines["close_positions"] = f"STILL OPEN: {named}"
    if trades := results.get("trading_report"):
        lines["trading_report"] = (
            f"{trades['trades']} trades, {trades['contracts']:g} contracts, "
            f"notional ${trades['notional']:,.2f}, realised P&L ${trades['realized_pnl']:,.2f}"
        )
    if backup := results.get("backup"):
        lines["backup"] = f"{backup['id']} ({_size(backup.get('bytes'))}, verified)"
    if scaled := results.get("scale_down"):
        changed = [f"{s['deployment']} {s['from']}→{s['to']}" for s in scaled if s["changed"]]
        lines["scale_down"] = ", ".join(changed) or "already at off_hours"
    if mode := results.get("monitoring_mode"):
        lines["monitoring_mode"] = f"{mode['mode']} (was {mode['previous']})"
    if archive := results.get("log_archive"):
        lines["log_archive"] = f"{archive['name']} ({_size(archive['bytes'])}, sha256 {archive['sha256'][:12]}…)"
    if metrics := results.get("store_daily_metrics"):
        lines["store_daily_metrics"] = f"tradeops.daily_metrics row for {metrics['session_date']}"
    if diagnostics := results.get("diagnostics"):
        lines["diagnostics"] = f"{diagnostics['files']} files, {_size(diagnostics['bytes'])}"
    return lines


def end_of_day_message(
    session: Session, exchange: str, steps: list[Step], run_url: str
) -> tuple[str, list[dict[str, Any]], list[str]]:
    """The end-of-day Slack message: ``(text, blocks, failed)``, ``failed`` the ids of the steps that failed or could
    not run because one before them failed (empty: complete). It says FAILED, never complete, when any did."""
    failed = [s for s in steps if s.failed]
    early = " (early close)" if session.early_close else ""
    when = f"{session.day:%a %Y-%m-%d} {exchange}{early}"
    if failed:
        headline = f"End of day {when}: FAILED ({', '.join(s.task_id for s in failed)})"
    else:
        headline = f"End of day {when}: complete"
    emoji = "🔴" if failed else "🟢"
    lines = [
        f"{STATE_EMOJI.get(s.state, '•')} *{s.label}*: {s.detail or s.state.replace('_', ' ')}".rstrip() for s in steps
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": headline[:150]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"{emoji} <{run_url}|Airflow run>"}]},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}},
    ]
    return f"{emoji} {headline}", blocks, [s.task_id for s in failed]
