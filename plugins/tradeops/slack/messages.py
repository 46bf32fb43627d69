"""Block Kit messages. Every message also carries a plain ``text`` fallback for notifications."""

from __future__ import annotations

from typing import Any

from tradeops.checks.base import CheckResult, Status, worst


def health_summary(title: str, results: list[CheckResult], run_url: str, when: str) -> tuple[str, list[dict[str, Any]]]:
    overall = worst(r.status for r in results)
    failed = [r for r in results if r.status is Status.FAIL]
    warned = [r for r in results if r.status is Status.WARN]
    if failed:
        headline = f"{title}: {len(failed)} of {len(results)} checks failed"
    elif warned:
        headline = f"{title}: all {len(results)} checks passed, {len(warned)} with warnings"
    else:
        headline = f"{title}: all {len(results)} checks passed"
    lines = [f"{r.status.emoji} *{r.title}*: {r.summary}" for r in results]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": headline[:150]}},
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"{overall.emoji} {when} · <{run_url}|Airflow run>"}],
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}},
    ]
    return f"{overall.emoji} {headline}", blocks
