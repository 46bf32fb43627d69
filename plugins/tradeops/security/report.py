"""The daily security report: one self-contained HTML file (Jinja2, inline CSS, no script), its JSON twin, and the
Slack summary that links it. Only findings' messages and facts reach it: never key material or credentials."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradeops.checks.base import CheckResult

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig

FOLDER = "daily_security_check"
ORDER = {"new": 0, "still open": 1, "fixed": 2}


def _sorted(tracked: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(tracked, key=lambda t: (ORDER[t["state"]], not t["critical"], t["status"] != "fail", t["id"]))


def counts(tracked: list[dict[str, Any]]) -> dict[str, int]:
    current = [t for t in tracked if t["state"] != "fixed"]
    return {
        "critical": sum(t["critical"] and t["status"] == "fail" for t in current),
        "failed": sum(t["status"] == "fail" for t in current),
        "warnings": sum(t["status"] == "warn" for t in current),
        "new": sum(t["state"] == "new" for t in tracked),
        "still open": sum(t["state"] == "still open" for t in tracked),
        "fixed": sum(t["state"] == "fixed" for t in tracked),
    }


def render(
    config: TradeOpsConfig,
    results: list[CheckResult],
    tracked: list[dict[str, Any]] | None,
    *,
    run_id: str,
    run_url: str,
    generated_at: datetime,
) -> str:
    from tradeops.reporting.files import templates

    tracked = tracked or []
    return (
        templates()
        .get_template("security_report.html")
        .render(
            platform=config.platform.name,
            results=results,
            tracked=_sorted(tracked),
            counts=counts(tracked),
            tracking_missing=not tracked and any(r.findings for r in results),
            run_id=run_id,
            run_url=run_url,
            generated_at=generated_at.strftime("%Y-%m-%d %H:%M UTC"),
        )
    )


def write(dag_id: str, run_id: str, html: str, results: list[CheckResult], tracked: list | None) -> dict[str, Path]:
    """``<reports>/daily_security_check/<run>.html`` and ``.json``, each written atomically."""
    from tradeops.reporting.files import reports_dir, write_json_report

    folder = reports_dir() / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id) + ".html")
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    data = {"dag_id": dag_id, "run_id": run_id, "results": [r.to_dict() for r in results], "findings": tracked or []}
    return {"html": path, "json": write_json_report(FOLDER, run_id, data)}


def slack_summary(results: list[CheckResult], tracked: list[dict[str, Any]] | None, path: Path, run_link: str) -> str:
    tracked = tracked or []
    n = counts(tracked)
    failed = [r.title for r in results if r.status.value == "fail"]
    head = (
        f"*Daily security check*: {len(failed)} of {len(results)} checks failed ({', '.join(failed)})"
        if failed
        else f"*Daily security check*: all {len(results)} checks passed"
    )
    lines = [
        head,
        f"{n['critical']} critical · {n['failed']} failed · {n['warnings']} warnings · "
        f"{n['new']} new · {n['still open']} still open · {n['fixed']} fixed",
    ]
    lines += [f"• NEW {t['message']}" for t in _sorted(tracked) if t["state"] == "new"][:8]
    lines.append(f"Report: <{path.resolve().as_uri()}|{path.name}> · <{run_link}|run>")
    return "\n".join(lines)
