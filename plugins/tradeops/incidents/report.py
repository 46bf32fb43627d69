"""An incident's report, for the review after it: what raised it (the alert and its labels, the check), how long it
took to acknowledge and to resolve, its whole timeline with who did what, every runbook action and its result, and a
lessons-learned section to fill in. Markdown (to paste into the postmortem) and HTML. Written as files when the
incident resolves (:mod:`tradeops.incidents.report_files`); served by the TradeOps app (``/tradeops/incidents/{id}/
report`` and ``.../report.md``: the files once written, else rendered now), linked from the incidents page and from
the Slack thread when the incident resolves. Secrets an alert or a step may carry (a token in a label, a password in
a URL) are redacted."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tradeops.incidents.models import EventKind
from tradeops.incidents.timeline import duration, key_values, since, timeline

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig
    from tradeops.incidents.models import Incident, IncidentEvent

HIDDEN = "***"
_SECRET_WORDS = {"password", "passwd", "passphrase", "secret", "token", "apikey", "authorization", "credential"}
_SECRET_NAMES = ("api_key", "access_key", "private_key", "secret_key", "webhook_url", "client_secret", "dsn")
_SECRET_TEXT = [
    (re.compile(r"(://[^/\s:@]+):[^/\s@]+@"), r"\1:" + HIDDEN + "@"),  # a URL's password
    (
        re.compile(r"(?i)([?&;][\w.-]*(?:token|secret|passw|api_?key|signature|sig|auth)[\w.-]*=)[^&#\s]+"),
        r"\1" + HIDDEN,
    ),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + HIDDEN),
    (re.compile(r"(?i)(authorization\"?\s*[=:]\s*\"?[A-Za-z]+\s+)[^\s\",;]+"), r"\1" + HIDDEN),  # any scheme
    (re.compile(r"\b(Basic)\s+(?=[A-Za-z0-9+/]*[0-9=])[A-Za-z0-9+/]{8,}=*"), r"\1 " + HIDDEN),  # not "basic checks"
    (
        re.compile(r"(?i)\b(password|passwd|secret|token|api[_-]?key)(\"?\s*[=:]\s*\"?)[^\s\",;&]+"),
        r"\1\2" + HIDDEN,
    ),  # also as JSON: "password": "..."
    (re.compile(r"\bxox[a-z]-[A-Za-z0-9-]+"), "xox-" + HIDDEN),  # a Slack token
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S), HIDDEN),
]


def secret_name(name: str) -> bool:
    """Whether a label, annotation or detail called ``name`` holds a secret (its value is never shown)."""
    lowered = name.lower()
    words = set(re.split(r"[^a-z0-9]+", lowered))
    return bool(words & _SECRET_WORDS) or any(part in lowered for part in _SECRET_NAMES)


def redact(value: Any) -> Any:
    """``value`` with what looks like a secret replaced by ``***``: the values of secret-named keys, a URL's
    password or token parameter, an ``Authorization`` credential, ``password=...``, a Slack token, a private key."""
    if isinstance(value, dict):
        return {
            k: HIDDEN if secret_name(str(k)) and value[k] not in ("", None) else redact(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, str):
        for pattern, replacement in _SECRET_TEXT:
            value = pattern.sub(replacement, value)
    return value


@dataclass(frozen=True)
class RunbookAction:
    """One ``runbook_step`` of the audit trail, for people: which step, its result, who, when, from which run."""

    at: datetime
    since_open: str
    step: str
    result: str
    failed: bool
    who: str
    run: str
    detail: str


def runbook_actions(incident: Incident, events: list[IncidentEvent]) -> list[RunbookAction]:
    """Every step a response runbook recorded on the incident, oldest first."""
    actions = []
    for event in events:
        if event.kind is not EventKind.RUNBOOK_STEP:
            continue
        d = event.detail or {}
        run = " ".join(str(d[k]) for k in ("dag_id", "run_id") if d.get(k))
        rest = key_values({k: v for k, v in d.items() if k not in ("step", "summary", "failed", "dag_id", "run_id")})
        actions.append(
            RunbookAction(
                at=event.at,
                since_open=since(incident.opened_at, event.at),
                step=str(d.get("step", "step")).replace("_", " "),
                result=str(d.get("summary") or ("failed" if d.get("failed") else "done")),
                failed=bool(d.get("failed")),
                who=event.actor,
                run=run,
                detail=rest,
            )
        )
    return actions


def _involved(incident: Incident) -> dict[str, Any]:
    """The alert or the check (or DAG run) that raised the incident, as shown under "What raised it"."""
    details = incident.details or {}
    raised_by: dict[str, Any] = {"source": incident.source.value.replace("_", " ")}
    if incident.source.value == "alert":
        kept = ("labels", "annotations", "group_key", "starts_at", "generator_url")
        raised_by.update({key: details[key] for key in kept if details.get(key)})
        return raised_by
    raised_by.update({k: v for k, v in (("DAG", incident.dag_id), ("run", incident.run_id)) if v})
    if incident.task_id:
        raised_by["task"] = incident.task_id
    if incident.source.value == "check" and (details.get("check") or details.get("dependency")):
        raised_by["check" if details.get("check") else "dependency"] = details.get("check") or details["dependency"]
    if details.get("held_back"):
        raised_by["checks held back"] = ", ".join(details["held_back"])
    return raised_by


def facts(incident: Incident, events: list[IncidentEvent], config: TradeOpsConfig) -> dict[str, Any]:
    """Everything the report shows, from the incident's row and its whole audit trail, secrets redacted."""
    incident = replace(
        incident, title=redact(incident.title), summary=redact(incident.summary), details=redact(incident.details)
    )
    events = [replace(event, detail=redact(event.detail)) for event in events]
    level_names = {level.level: level.name for level in config.escalation.levels}
    entries = timeline(incident, events, level_names)
    return {
        "incident": incident,
        "raised_by": _involved(incident),
        "time_to_acknowledge": _elapsed(incident.opened_at, incident.acknowledged_at),
        "time_to_resolve": _elapsed(incident.opened_at, incident.resolved_at),
        "highest_level": max((e.level or 0 for e in events), default=0),
        "level_names": level_names,
        "timeline": entries,
        "runbook": runbook_actions(incident, events),
        "actions": [
            e
            for e, event in zip(entries, events, strict=True)
            if e.tone == "person" and event.kind is not EventKind.RUNBOOK_STEP
        ],
    }


def _elapsed(start: datetime, end: datetime | None) -> str | None:
    return None if end is None else duration(end - start)


def render(kind: str, data: dict[str, Any]) -> str:
    """``kind`` is ``html`` or ``md``."""
    import jinja2

    from tradeops.reporting.files import templates

    environment = templates(autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    environment.filters["utc"] = lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"
    environment.filters["cell"] = lambda text: str(text).replace("|", "\\|").replace("\n", " ")  # a Markdown cell
    return environment.get_template(f"incident_report.{kind}").render(**data)
