"""Alertmanager's webhook as incidents: one incident per alert (its ``fingerprint``) while it fires, through the one
incident function (:meth:`~tradeops.incidents.service.IncidentService.open`), resolved when the alert resolves.

- Authentication: the ``Authorization`` header Alertmanager's ``http_config`` sends, ``Bearer <credential>`` or
  ``Basic`` (login and password), against the ``connections.alertmanager_webhook`` connection; anything else is
  refused before the body is read.
- A redelivery changes nothing: Alertmanager retries a failed notification and notifies a group again at every
  ``group_interval``; an alert delivered firing with the ``startsAt`` already recorded
  (``tradeops.alert_states``) for an incident still open is "already known".
- Severity: the ``alerts.severity_label`` label, mapped by ``alerts.severities`` (exact values), else
  ``alerts.default_severity``.
- A resolved alert resolves its incident, unless a person has acknowledged it and ``alerts.keep_acknowledged_open``:
  then the timeline says the alert resolved and they resolve it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, ValidationError

from tradeops.exceptions import MalformedAlertmanagerRequest

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig
    from tradeops.incidents.service import IncidentService

ACTOR = "Alertmanager"


class Alert(BaseModel):
    """One alert of a notification (Alertmanager's webhook payload, version 4)."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = {}
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = Field(min_length=1, max_length=128)


class Notification(BaseModel):
    """Alertmanager's webhook body; other keys (``truncatedAlerts``, ``externalURL``...) are ignored."""

    version: str
    groupKey: str
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    alerts: list[Alert]


def parse_notification(body: bytes) -> Notification:
    """:raises MalformedAlertmanagerRequest: with the reason, for anything that is not a version 4 notification."""
    try:
        notification = Notification.model_validate_json(body)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in err.errors())
        raise MalformedAlertmanagerRequest(f"not an Alertmanager notification ({problems})") from None
    if notification.version != "4":
        raise MalformedAlertmanagerRequest(f"webhook payload version {notification.version!r}: only 4 is known")
    return notification


def authorized(header: str | None, login: str | None, credential: str | None) -> bool:
    """Whether ``header`` carries the connection's credential: ``Bearer <password>``, or ``Basic`` with its login
    and password. No credential configured refuses everything."""
    if not credential or not header:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return hmac.compare_digest(value.strip().encode(), credential.encode())
    if scheme.lower() == "basic" and login:
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(decoded, f"{login}:{credential}".encode())
    return False


def severity_of(alert: Alert, config: TradeOpsConfig) -> str:
    policy = config.alerts
    return policy.severities.get(alert.labels.get(policy.severity_label, ""), policy.default_severity)


def incident_key(alert: Alert) -> str:
    return f"alert:{alert.fingerprint}"


def receive(notification: Notification, incidents: IncidentService) -> list[dict[str, Any]]:
    """Each alert of ``notification`` opened, updated, resolved or found already known; what happened to each."""
    return [_receive_one(alert, notification, incidents) for alert in notification.alerts]


def _receive_one(alert: Alert, notification: Notification, incidents: IncidentService) -> dict[str, Any]:
    from tradeops.incidents import store
    from tradeops.incidents.models import EventKind, IncidentSource, IncidentStatus, NewIncident

    name = alert.labels.get("alertname", "alert")
    outcome: dict[str, Any] = {"fingerprint": alert.fingerprint, "alertname": name, "status": alert.status}
    with store.connect(incidents.dsn) as conn, conn.transaction():
        # One delivery of a fingerprint at a time: a retry racing the original waits, then finds it recorded.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (incident_key(alert),))
        known = (
            conn.execute(
                "SELECT s.status, s.starts_at, s.incident_id, i.status AS incident_status FROM tradeops.alert_states s "
                "LEFT JOIN tradeops.incidents i ON i.id = s.incident_id WHERE s.fingerprint = %s",
                (alert.fingerprint,),
            ).fetchone()
            or {}
        )
        incident_id: int | None = known.get("incident_id")
        incident_status = known.get("incident_status")
        open_id = incident_id if incident_status not in (None, IncidentStatus.RESOLVED) else None
        if alert.status == "firing":
            if open_id is not None and (known["status"], known["starts_at"]) == ("firing", alert.startsAt):
                outcome.update(result="already known", incident=open_id)
            else:
                summary = alert.annotations.get("summary") or alert.annotations.get("description") or name
                opened = incidents.open(
                    NewIncident(
                        dedup_key=incident_key(alert),
                        source=IncidentSource.ALERT,
                        severity=severity_of(alert, incidents.config),
                        title=f"{name}: {summary}",
                        summary=alert.annotations.get("description", ""),
                        details={
                            "labels": alert.labels,
                            "annotations": alert.annotations,
                            "group_key": notification.groupKey,
                            "starts_at": alert.startsAt.isoformat(),
                            "generator_url": alert.generatorURL,
                        },
                        actor=ACTOR,
                    )
                )
                incident_id = opened.incident.id
                outcome.update(result="opened" if opened.created else "occurred again", incident=incident_id)
        elif open_id is None:
            outcome.update(result="nothing open", incident=incident_id)
        elif incident_status == IncidentStatus.ACKNOWLEDGED and incidents.config.alerts.keep_acknowledged_open:
            store.event(conn, open_id, EventKind.ALERT_RESOLVED, actor=ACTOR, detail=_ended(alert))
            outcome.update(result="kept open (acknowledged)", incident=open_id)
        else:
            incidents.resolve(open_id, ACTOR, note=f"the alert resolved at {_ended(alert)['ended_at']}")
            outcome.update(result="resolved", incident=open_id)
        conn.execute(
            """
            INSERT INTO tradeops.alert_states AS s (fingerprint, group_key, alertname, status, starts_at, ends_at,
                                                    incident_id, updated_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (fingerprint) DO UPDATE SET group_key = EXCLUDED.group_key, status = EXCLUDED.status,
                starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at,
                incident_id = coalesce(EXCLUDED.incident_id, s.incident_id), updated_at = EXCLUDED.updated_at
            """,
            (
                alert.fingerprint,
                notification.groupKey,
                name,
                alert.status,
                alert.startsAt,
                alert.endsAt if alert.status == "resolved" else None,
                incident_id,
                datetime.now(UTC),
            ),
        )
    return outcome


def _ended(alert: Alert) -> dict[str, str]:
    return {"ended_at": (alert.endsAt or datetime.now(UTC)).isoformat()}
