"""Silences against the sandbox's real PostgreSQL: literal prefix matching, no match-all, P1 and security incidents
muted only when confirmed for them, the config's longest silence, a preview, the list, and ending one early."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from tradeops.exceptions import IncidentError
from tradeops.incidents import store
from tradeops.incidents.models import NewIncident
from tradeops.incidents.service import IncidentService


def open_at(incidents: IncidentService, key: str, severity: str):
    new = NewIncident(dedup_key=key, source="manual", severity=severity, title=f"test {severity} {key}")
    return incidents.open(new).incident


def test_a_silence_leaves_p1_and_security_incidents_paging_unless_confirmed_for_them(incidents, key, messages_of):
    p1, p3 = open_at(incidents, f"{key}:p1", "P1"), open_at(incidents, f"{key}:p3", "P3")
    preview = incidents.preview_silence(key)
    assert [i.id for i in preview.muted] == [p3.id] and [i.id for i in preview.still_paging] == [p1.id]

    incidents.silence(key, "@alice", "planned work", timedelta(minutes=30))
    assert incidents.get(p1.id).silenced_until is None
    assert incidents.get(p3.id).silenced_until is not None
    security = open_at(incidents, f"{key}:security", "security")  # opened during the silence: pages at once
    assert security.silenced_until is None and messages_of(security.id)

    confirmed = incidents.silence(key, "@alice", "war room has it", timedelta(minutes=10), covers_critical=True)
    assert incidents.get(p1.id).silenced_until == confirmed.ends_at
    assert [i.id for i in incidents.preview_silence(key, covers_critical=True).still_paging] == []


def test_a_matcher_that_matches_everything_is_refused_by_the_service_and_the_table(incidents, state_dsn):
    for attempt in (
        lambda: incidents.silence("", "@alice", "mute it all", timedelta(minutes=5)),
        lambda: incidents.preview_silence(""),
    ):
        with pytest.raises(IncidentError, match="would match every incident"):
            attempt()
    with store.connect(state_dsn) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO tradeops.silences (matcher, author, reason, ends_at) VALUES ('', 'x', 'y', now() + '1h')"
        )


def test_an_underscore_matches_only_keys_that_start_with_one(incidents, key):
    ordinary = open_at(incidents, key, "P3")
    underscored = open_at(incidents, f"_{key}", "P3")
    silence = incidents.silence("_", "@alice", "literal matching", timedelta(minutes=5))
    assert incidents.get(ordinary.id).silenced_until is None
    assert incidents.get(underscored.id).silenced_until == silence.ends_at
    incidents.end_silence(silence.id, "@alice")


def test_the_longest_silence_is_the_configs(incidents, key):
    longest = timedelta(minutes=incidents.config.incidents.max_silence_minutes)
    assert longest == timedelta(hours=24)
    with pytest.raises(IncidentError, match="incidents.max_silence_minutes"):
        incidents.silence(key, "@alice", "a long weekend", longest + timedelta(minutes=1))
    assert incidents.silence(key, "@alice", "a long day", longest).ends_at


def test_silences_are_listed_and_one_ended_early_pages_again_at_once(incidents, key, messages_of):
    short = incidents.silence(f"{key}:", "@alice", "feed maintenance", timedelta(minutes=20))
    broad = incidents.silence(key, "@bob", "whole desk", timedelta(minutes=40))
    assert [s.id for s in incidents.active_silences() if s.matcher.startswith(key)] == [short.id, broad.id]
    incident = open_at(incidents, f"{key}:feed", "P2")  # opened during the silences: nobody paged
    assert messages_of(incident.id) == []

    incidents.end_silence(short.id, "@alice")  # the broader one still covers it
    assert incidents.get(incident.id).silenced_until == broad.ends_at
    assert messages_of(incident.id) == []

    ended = incidents.end_silence(broad.id, "@carol")
    assert ended.ended_by == "@carol" and ended.ended_at is not None
    assert incidents.get(incident.id).silenced_until is None
    assert len(messages_of(incident.id, "#trading-alerts")) == 1, "paged as soon as the last silence ended"
    assert [s.id for s in incidents.active_silences() if s.matcher.startswith(key)] == []
    ended_events = [e for e in incidents.timeline(incident.id) if e.kind == "silence_ended"]
    assert ("@carol", False) in [(e.actor, e.detail.get("still_silenced")) for e in ended_events]
    with pytest.raises(IncidentError, match="no silence"):
        incidents.end_silence(broad.id, "@carol")
