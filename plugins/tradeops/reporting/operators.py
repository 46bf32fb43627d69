"""Operators that write reports: the daily operations report (one self-contained HTML file per session)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from tradeops.incidents.mixins import WithIncidentService
from tradeops.reporting.files import templates

if TYPE_CHECKING:
    from airflow.sdk import Context

    from tradeops.config import TradeOpsConfig
    from tradeops.reporting.daily_ops import DayReport, Recommendation

FOLDER = "daily_ops_report"
SEVERITY_TONES = {"P1": "bad", "security": "bad", "P2": "warn", "P3": "neutral", "P4": "neutral"}


def span(value: timedelta | None) -> str:
    """A duration for the report: ``45s``, ``12m 05s``, ``3h 05m``; an em dash when there is none."""
    if value is None:
        return "—"
    seconds = max(int(value.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {(seconds % 3600) // 60:02d}m"


def report_charts(day: DayReport) -> dict[str, str]:
    """The report's inline SVG charts, by name."""
    from tradeops.reporting.charts import Bar, bar_chart, line_chart

    target = day.p95_target_ms
    cpu = [
        Bar(c.name, c.cpu_pct, "bad" if c.cpu_pct > day.cpu_limit_pct else "ok")
        for c in day.components
        if c.cpu_pct is not None
    ]
    memory = [
        Bar(c.name, c.memory_pct, "bad" if c.memory_pct > day.memory_limit_pct else "ok")
        for c in day.components
        if c.memory_pct is not None
    ]
    counts = day.by_severity
    severity = [Bar(s, counts[s], SEVERITY_TONES[s]) for s in ("P1", "security", "P2", "P3", "P4") if counts[s]]
    hours = day.performance.p95_by_hour
    return {
        "latency": line_chart(
            "Latency p95 by hour",
            f"p95 of the platform's recorded latency per hour of the session; target {target:g} ms; "
            + (", ".join(f"{h} {v:g} ms" for h, v in hours) or "no samples"),
            hours,
            unit=" ms",
            target=target,
        ),
        "cpu": bar_chart(
            "CPU by component",
            "; ".join(f"{b.label} {b.value:g} %" for b in cpu) or "no data",
            cpu,
            unit=" %",
            target=day.cpu_limit_pct,
            scale=100,
        ),
        "memory": bar_chart(
            "Memory by component",
            "; ".join(f"{b.label} {b.value:g} %" for b in memory) or "no data",
            memory,
            unit=" %",
            target=day.memory_limit_pct,
            scale=100,
        ),
        "severity": bar_chart(
            "Incidents by severity", "; ".join(f"{b.label}: {b.value:g}" for b in severity) or "no incidents", severity
        ),
    }


def render_report(
    day: DayReport, recs: list[Recommendation], config: TradeOpsConfig, *, run_id: str, generated_at: datetime, tz: str
) -> str:
    """The report as one HTML document: inline CSS and SVG, no script, nothing fetched."""
    from zoneinfo import ZoneInfo

    from markupsafe import Markup

    environment = templates()
    zone = ZoneInfo(tz)
    return environment.get_template("daily_ops_report.html").render(
        day=day,
        recs=recs,
        charts={name: Markup(svg) for name, svg in report_charts(day).items()},
        platform=config.platform.name,
        exchange=config.platform.exchange,
        exchange_tz=tz,
        local=lambda moment: moment.astimezone(zone).strftime("%a %d %b %H:%M %Z"),
        span=span,
        run_id=run_id,
        generated_at=generated_at.strftime("%Y-%m-%d %H:%M UTC"),
    )


def write_report(html: str, day: str) -> Path:
    """``reports_dir()/daily_ops_report/<day>.html``, written atomically (a re-run replaces it)."""
    from tradeops.reporting.files import reports_dir

    folder = reports_dir() / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{day}.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


def prune_reports(keep_days: int, today: datetime) -> list[Path]:
    """Remove the daily reports dated more than ``keep_days`` before ``today``; returns what was removed."""
    from tradeops.reporting.files import reports_dir

    oldest = (today - timedelta(days=keep_days)).date()
    removed = []
    for path in sorted((reports_dir() / FOLDER).glob("*.html")):
        try:
            dated = datetime.strptime(path.stem, "%Y-%m-%d").date()
        except ValueError:
            continue  # not one of ours
        if dated < oldest:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def slack_summary(day: DayReport, recs: list[Recommendation], path: Path, run_link: str) -> str:
    """One message: the day in a few numbers, what needs action, and where the report is."""
    perf, actions = day.performance, [r for r in recs if r.level == "action"]
    lines = [
        f"*Daily operations report · {day.window.session.day}*",
        f"Trades {day.trading.trades:,} · p95 {perf.p95_ms:g} ms (target {day.p95_target_ms:g}) · "
        f"errors {perf.error_rate_pct:g} % · incidents {len(day.incidents)} (MTTA {span(day.mtta)}, "
        f"MTTR {span(day.mttr)}) · failed logins {day.security.failed}",
    ]
    lines += [f"• {r.text}" for r in actions[:5]] or ["Nothing needs action."]
    lines.append(f"Report: <{path.resolve().as_uri()}|{path.name}> · <{run_link}|run>")
    return "\n".join(lines)


class DailyOpsReportOperator(WithIncidentService, BaseOperator):
    """Write the daily operations report of the session the run closes out (``current_or_previous(run_after)``) as
    one self-contained HTML file under ``reports_dir()/daily_ops_report/<session date>.html``, prune reports older
    than ``reports.keep_days``, and post one summary to Slack (dedup key ``ops-report:<session date>``: a re-run
    rewrites the file and posts nothing more). Returns the file's path, size and the recommendations.

    :param channel: the Slack channel of the summary (default: ``slack.channels.ops``).
    """

    ui_color = "#ebf8ff"

    def __init__(self, *, channel: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.channel = channel

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.calendar.sessions import sessions_for
        from tradeops.config import load_config
        from tradeops.reporting.daily_ops import recommendations, report_window
        from tradeops.reporting.daily_ops_sources import collect_day
        from tradeops.reporting.links import run_url

        config = load_config()
        table = sessions_for(config.platform.exchange)
        ti, moment = context["ti"], context["dag_run"].run_after
        window = report_window(table, moment)
        self.log.info("Reporting on session %s (window %s .. %s)", window.session.day, window.start, window.end)
        day = collect_day(config, window, self.incidents)
        recs = recommendations(day)
        now = datetime.now(UTC)
        html = render_report(day, recs, config, run_id=ti.run_id, generated_at=now, tz=table.tz)
        path = write_report(html, window.session.day.isoformat())
        self.log.info("Report written to %s (%d bytes)", path, len(html.encode()))
        for removed in prune_reports(config.reports.keep_days, now):
            self.log.info("Removed %s (older than %d days)", removed, config.reports.keep_days)
        text = slack_summary(day, recs, path, run_url(ti.dag_id, ti.run_id))
        channel = self.channel or config.slack.channels["ops"]
        delivered = self.incidents.send_report(f"ops-report:{window.session.day.isoformat()}", channel, text)
        self.log.info("Summary %s %s", "posted to" if delivered else "queued for", channel)
        return {
            "session": window.session.day.isoformat(),
            "report": str(path),
            "bytes": len(html.encode()),
            "recommendations": [r.text for r in recs],
            "summary_delivered": delivered,
        }
