"""The incident records, as the store reads them from PostgreSQL (schema ``tradeops``), and the words they use.

Each record is typed and frozen, with one field per column of its table; the enums' values are the strings stored
in the database (``tradeops.incidents.status``, ``tradeops.incident_events.kind``, ``tradeops.outbox.kind``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

SEVERITIES = ("P1", "P2", "P3", "P4", "security")
SEVERITY_ORDER = ("P1", "security", "P2", "P3", "P4")  # most severe first
CRITICAL_SEVERITIES = ("P1", "security")  # a silence mutes these only when confirmed for them
# What a silence targets: one incident (#42, its dedup key) or a dedup-key prefix (literal), in every form and page.
SILENCE_TARGET = r"^(#[1-9][0-9]{0,17}|[a-z0-9_:.\-]{1,200})$"


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class IncidentSource(StrEnum):
    DEADLINE = "deadline"
    TASK_FAILURE = "task_failure"
    CHECK = "check"
    MANUAL = "manual"
    ALERT = "alert"


class EventKind(StrEnum):
    """What an entry of an incident's audit trail records."""

    OPENED = "opened"
    DEDUPLICATED = "deduplicated"  # one more occurrence of an active incident
    SILENCED = "silenced"
    PAGED = "paged"  # level 1, first cycle
    REPEATED = "repeated"  # level 1 again, when the ladder starts over
    ESCALATED = "escalated"  # a level above 1
    ACK_STALE = "ack_stale"
    SILENCE_ENDED = "silence_ended"
    STATUS_UPDATE = "status_update"
    NOTIFIED = "notified"  # an outbox message reached Slack
    DELIVERY_FAILED = "delivery_failed"  # Slack refused or failed it; retried later
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    HELD_BACK = "held_back"  # a check's incident held back because its dependency is down (on the dependency's)
    ALERT_RESOLVED = "alert_resolved"  # its alert resolved; the incident stays open (a person acknowledged it)
    RUNBOOK_STEP = "runbook_step"  # a step of a response runbook (incident_response): what it did, by whom
    RUNBOOK_START = "runbook_start"  # its runbook started automatically (or why not): the run, its type, the result


class OutboxKind(StrEnum):
    """The Slack messages of the outbox."""

    PAGE = "page"  # the first message: the incident's thread
    ESCALATION = "escalation"  # a message in a level's channel
    WAR_ROOM = "war_room"  # create the channel, then post in it
    THREAD_REPLY = "thread_reply"
    UPDATE_ROOT = "update_root"  # edit the first message (status, buttons)
    REPORT = "report"  # a message of no incident (a run's summary), once per dedup key


@dataclass(frozen=True)
class Incident:
    """A row of ``tradeops.incidents``."""

    id: int
    dedup_key: str
    source: IncidentSource
    severity: str
    title: str
    summary: str
    dag_id: str | None
    run_id: str | None
    task_id: str | None
    status: IncidentStatus
    level: int  # the last level notified; 0 before the first page
    loop: int  # how many times the policy has started over
    escalation_anchor: datetime  # when level 1 of the current cycle was due
    opened_at: datetime
    last_seen_at: datetime
    occurrences: int
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    last_update_at: datetime  # the last status update posted
    silenced_until: datetime | None
    next_action_at: datetime | None
    slack_channel: str | None  # the incident's thread (channel id and ts of its first message)
    slack_ts: str | None
    war_room: str | None
    details: dict[str, Any]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Incident:
        return cls(**{**row, "source": IncidentSource(row["source"]), "status": IncidentStatus(row["status"])})


@dataclass(frozen=True)
class IncidentEvent:
    """A row of ``tradeops.incident_events``, the append-only audit trail."""

    id: int
    incident_id: int
    at: datetime
    kind: EventKind
    actor: str
    level: int | None
    detail: dict[str, Any]
    slack_channel: str | None
    slack_ts: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> IncidentEvent:
        return cls(**{**row, "kind": EventKind(row["kind"])})


@dataclass(frozen=True)
class Silence:
    """A row of ``tradeops.silences``: no paging, for incidents whose dedup key starts with ``matcher`` (P1 and
    security incidents only when ``covers_critical``)."""

    id: int
    matcher: str
    author: str
    reason: str
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    covers_critical: bool = False  # also mutes P1 and security incidents (an explicit confirmation)
    ended_at: datetime | None = None  # ended early
    ended_by: str | None = None


@dataclass(frozen=True)
class SilencePreview:
    """What a silence would do now: the active incidents its matcher matches, split into those it would mute and
    the P1 and security ones it leaves paging (not confirmed for them)."""

    matcher: str
    muted: list[Incident]
    still_paging: list[Incident]


@dataclass(frozen=True)
class OutboxMessage:
    """An undelivered row of ``tradeops.outbox``, with its incident's thread (``incident_id`` None: a report)."""

    id: int
    incident_id: int | None
    kind: OutboxKind
    channel: str  # empty for thread replies and root updates: they go to the incident's thread
    text: str
    blocks: list[dict[str, Any]] | None
    in_thread: bool
    level: int | None
    attempts: int
    root_channel: str | None  # the incident's thread, once its page is delivered
    root_ts: str | None
    root_channel_name: str | None  # the channel its page was sent to, as named in the config

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> OutboxMessage:
        return cls(**{**row, "kind": OutboxKind(row["kind"])})


@dataclass(frozen=True)
class NewIncident:
    """What a source reports when it opens an incident: one per ``dedup_key`` while active (a second report is one
    more occurrence of it)."""

    dedup_key: str
    source: IncidentSource
    severity: str
    title: str
    summary: str = ""
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    actor: str = "tradeops"

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", IncidentSource(self.source))


@dataclass(frozen=True)
class Opened:
    """What opening gave: the incident, and whether it is new (else the key's active one, one occurrence more)."""

    incident: Incident
    created: bool
