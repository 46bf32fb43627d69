"""The monthly access review's report: one self-contained HTML file (Jinja2, inline CSS, no script), the access
matrix as CSV next to it, and the Slack summary that links them. It names subjects, bindings and verbs only."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from pathlib import Path
from typing import Any

FOLDER = "monthly_access_review"


def matrix_csv(entries: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["subject", "namespace", "verbs", "role", "binding"])
    for e in entries:
        writer.writerow([e["subject"], e["namespace"], " ".join(e["verbs"]), e["role"], e["binding"]])
    return out.getvalue()


def render(platform: str, review: dict[str, Any], *, run_id: str, run_url: str, generated_at: datetime) -> str:
    from tradeops.reporting.files import templates

    namespaces = sorted({e["namespace"] for e in review["entries"]}, key=lambda n: (n == "*", n))
    cells: dict[str, dict[str, set[str]]] = {}
    for e in review["entries"]:
        cells.setdefault(e["subject"], {}).setdefault(e["namespace"], set()).update(e["verbs"])
    matrix = [
        (subject, [" ".join(sorted(by_ns.get(ns, set()))) for ns in namespaces])
        for subject, by_ns in sorted(cells.items())
    ]
    return (
        templates()
        .get_template("access_review.html")
        .render(
            platform=platform,
            review=review,
            namespaces=namespaces,
            matrix=matrix,
            run_id=run_id,
            run_url=run_url,
            generated_at=generated_at.strftime("%Y-%m-%d %H:%M UTC"),
        )
    )


def write(run_id: str, html: str, entries: list[dict[str, Any]]) -> dict[str, Path]:
    """``<reports>/monthly_access_review/<run>.html`` and ``.csv`` (the matrix), each written atomically."""
    from tradeops.reporting.files import reports_dir

    folder = reports_dir() / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)
    paths = {"html": folder / f"{stem}.html", "csv": folder / f"{stem}.csv"}
    for kind, text in (("html", html), ("csv", matrix_csv(entries))):
        tmp = paths[kind].with_suffix(f".{kind}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(paths[kind])
    return paths


def slack_summary(review: dict[str, Any], paths: dict[str, Path], run_link: str) -> str:
    removals = review["removals"]
    lines = [
        f"*Monthly access review*{' (dry run)' if review['dry_run'] else ''}: {len(review['subjects'])} subjects, "
        f"{len(review['bindings'])} bindings · {len(review['inactive_with_access'])} inactive users with access · "
        f"{len(review['gained'])} gained · {len(review['lost'])} lost since {review['since']}",
    ]
    lines += [f"• inactive: {user} ({why})" for user, why in sorted(review["inactive_with_access"].items())]
    lines += [f"• gained: {e['subject']} {e['role']} in {e['namespace']} ({e['binding']})" for e in review["gained"]][
        :8
    ]
    if removals:
        lines.append(
            f"{len(removals)} removals planned"
            + (": dry run, nothing is removed" if review["dry_run"] else ", waiting for a reviewer to pick them")
        )
    lines.append(
        f"Report: <{paths['html'].resolve().as_uri()}|{paths['html'].name}> · "
        f"<{paths['csv'].resolve().as_uri()}|matrix (CSV)> · <{run_link}|run>"
    )
    return "\n".join(lines)
