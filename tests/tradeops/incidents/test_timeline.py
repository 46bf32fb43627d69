"""An incident's timeline in words (pure: no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tradeops.incidents.models import EventKind, IncidentEvent
from tradeops.incidents.timeline import describe, duration, since

T0 = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
LEVELS = {1: "On-call engineer", 2: "Operations manager"}


def event(what: str, level: int | None = None, channel: str | None = None, **detail) -> IncidentEvent:
    return IncidentEvent(1, 1, T0, EventKind(what), "tradeops", level, detail, channel, None)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "+0s"), (45, "+45s"), (125, "+2m 05s"), (3720, "+1h 02m"), (183600, "+2d 03h"), (-3, "+0s")],
)
def test_since_the_opening(seconds, text):
    assert since(T0, T0 + timedelta(seconds=seconds)) == text


def test_remaining_time():
    assert [duration(timedelta(seconds=s)) for s in (30, 720, 11100, -5)] == ["30s", "12m", "3h 05m", "0s"]


@pytest.mark.parametrize(
    ("recorded", "words"),
    [
        (
            event("opened", source="task_failure", severity="P1", title="t", summary="`load` failed"),
            ("Opened", "P1 task failure: `load` failed", ""),
        ),
        (event("deduplicated", occurrences=3, summary="again"), ("Occurred again", "occurrence 3: again", "")),
        (
            event("paged", 1, targets=["#trading-alerts", "@oncall-primary"], loop=0, catch_up=False),
            ("Paged L1 (On-call engineer)", "to #trading-alerts @oncall-primary", "page"),
        ),
        (
            event("escalated", 2, targets=["#ops-management"], loop=0, catch_up=True),
            (
                "Escalated to L2 (Operations manager)",
                "to #ops-management · overdue: it fell due while TradeOps was not running",
                "page",
            ),
        ),
        (
            event("repeated", 1, targets=["#a"], loop=1),
            ("Paged L1 (On-call engineer) again (cycle 2)", "to #a", "page"),
        ),
        (event("escalated", 7, targets=[]), ("Escalated to L7", "", "page")),
        (
            event("silenced", until="2026-11-30T15:30:00+00:00", reason="vendor work", silence=4),
            ("Silenced", "until 2026-11-30 15:30 UTC by silence #4: vendor work", "person"),
        ),
        (
            event("silence_ended", silence=4, ended_early=True, still_silenced=False),
            ("Silence ended", "silence #4 ended early: paging again", "person"),
        ),
        (event("silence_ended", 1), ("Silence ended", "the silence ran out: paging again", "")),
        (
            event("ack_stale", 2, acknowledged_by="bob"),
            (
                "Acknowledgement went stale",
                "acknowledged by bob, not resolved in time: paging L2 (Operations manager) again",
                "warn",
            ),
        ),
        (
            event("notified", 1, "#trading-alerts", kind="page"),
            ("Delivered to Slack", "first message (the thread) in #trading-alerts", "minor"),
        ),
        (
            event("delivery_failed", 1, kind="thread_reply", channel="", error="ratelimited", attempt=2),
            ("Slack delivery failed (retried)", "thread reply to the thread, attempt 2: ratelimited", "warn"),
        ),
        (event("acknowledged", 1, note="on it"), ("Acknowledged", "note: on it", "person")),
        (event("resolved", 1, note=""), ("Resolved", "", "person")),
        (
            event("held_back", dag_id="daily_health_check", run_id="r", check="tls", summary="unreachable"),
            ("Check held back", "tls (daily_health_check): unreachable", ""),
        ),
        (event("status_update", 2), ("Status update", "posted in the thread at L2 (Operations manager)", "minor")),
        (
            event("runbook_start", dag_id="incident_response", run_id="r", type="critical", result="started"),
            ("Runbook started automatically", "incident_response run r (critical): started", ""),
        ),
        (
            event(
                "runbook_start",
                dag_id="incident_response",
                run_id="r",
                type="system_failure",
                result="failed",
                error="PlatformApiError: down",
                attempt=2,
                retry_in_s=30,
            ),
            (
                "Runbook started automatically",
                "incident_response run r (system_failure): failed (PlatformApiError: down); next try in 30 s "
                "(attempt 2)",
                "warn",
            ),
        ),
    ],
    ids=lambda value: value.kind.value if isinstance(value, IncidentEvent) else "",
)
def test_each_kind_of_event_in_words(recorded, words):
    assert describe(recorded, LEVELS) == words


def test_every_kind_of_event_has_words_and_no_json():
    for kind in EventKind:
        what, detail, _tone = describe(event(kind.value, 1, extra_key="x"), LEVELS)
        assert what and not what.startswith("{") and "{" not in detail, kind
