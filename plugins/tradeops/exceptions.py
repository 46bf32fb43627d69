"""Every error TradeOps raises, under one root: ``except TradeOpsError`` catches what the library means to say, and
nothing it did not mean to.

An operator lets these propagate (Airflow fails the task and retries it, when retries are left); where a retry
cannot help (bad input, a refused gate), it raises ``AirflowFailException`` instead.
"""

from __future__ import annotations


class TradeOpsError(Exception):
    """The root of TradeOps' errors."""


class ConfigError(TradeOpsError, ValueError):
    """The config file is missing, unreadable or invalid (the message names the file, the field and the line)."""


class OutsideCalendarError(TradeOpsError, ValueError):
    """A date outside the range the exchange calendar was built for."""


class WindowClosed(TradeOpsError):
    """Maintenance may not start now: outside the window, or the exchange is open (and no glass was broken)."""


class PagedFailure(TradeOpsError):
    """A failure the failing task has paged for itself, with an incident of its own (positions left open: P1): the
    runbook-failure policy opens nothing more for it. Raised together with ``AirflowFailException`` (no retry)."""


class RunbookRefused(TradeOpsError):
    """A runbook refused its input before doing anything (an incident that does not exist or is resolved): the person
    who triggered it sees why in the failed run, and the runbook-failure policy opens nothing for it. Raised together
    with ``AirflowFailException`` (no retry)."""


class CheckFailed(TradeOpsError):
    """A check ran and found a problem, or could not check at all. Retried: the next try checks again."""


class ServiceError(TradeOpsError):
    """A call to a service TradeOps depends on failed; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class PlatformApiError(ServiceError):
    """The trading platform's API (or Alertmanager) refused or failed a call."""


class KubernetesError(ServiceError):
    """The Kubernetes API refused or failed a call."""


class KubernetesForbidden(KubernetesError):
    """403: TradeOps' service account lacks a permission (the message names the role to extend)."""


class KubernetesNotFound(KubernetesError):
    """404: the object or namespace does not exist."""


class KubernetesConflict(KubernetesError):
    """409 that re-reading and re-applying could not resolve."""


class RolloutFailed(TradeOpsError):
    """A rollout cannot complete (kubectl's ``ProgressDeadlineExceeded`` rule), with kubectl's message."""


class IncidentError(TradeOpsError, ValueError):
    """An incident operation that cannot be done: unknown incident, wrong status, incomplete silence."""


class MalformedSlackRequest(TradeOpsError, ValueError):
    """A correctly signed request to the Slack endpoint that is not a Slack interaction (answered 400)."""


class MalformedAlertmanagerRequest(TradeOpsError, ValueError):
    """An authorized request to the Alertmanager webhook that is not a notification it knows (answered 400)."""


class DatabaseError(TradeOpsError):
    """A database-care step that cannot complete."""


class LockRetriesExhausted(DatabaseError):
    """A step kept meeting a conflicting lock; it gave up rather than queue the platform's writers behind it."""


class BackupError(DatabaseError):
    """A backup that could not be taken, verified, restore-checked or restored."""
