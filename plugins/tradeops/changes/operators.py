"""Take and give back the deployment leases of :mod:`tradeops.changes.locks` around a runbook's changes.

The holder is the run, ``"<dag_id>/<run_id>"``: every task of the run shares its leases, a retry renews them, and
the release at the end (``trigger_rule=all_done``) gives back whatever the run holds, however it ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException

from tradeops.config import load_config

if TYPE_CHECKING:
    from airflow.sdk import Context

    from tradeops.changes.locks import ChangeLocks

DEFAULT_TTL = timedelta(hours=1)
POKE = timedelta(seconds=2)


def holder_of(context: Context) -> str:
    """The lease holder of this task's run: ``"<dag_id>/<run_id>"``."""
    return f"{context['dag'].dag_id}/{context['run_id']}"


def _locks(state_db_conn_id: str | None) -> ChangeLocks:
    from tradeops.changes.locks import ChangeLocks
    from tradeops.connections import postgres_dsn

    return ChangeLocks(postgres_dsn(state_db_conn_id or load_config().connections.state_db))


def _seconds(value: timedelta | float) -> timedelta:
    return value if isinstance(value, timedelta) else timedelta(seconds=value)


class AcquireDeploymentLockOperator(BaseOperator):
    """Take the leases of ``deployments`` for this run, all or nothing. While another run holds any of them, wait
    up to ``wait`` by rescheduling (no worker slot held meanwhile), then fail naming the holder (no retry: a retry
    would only wait again).

    :param namespace: the deployments' namespace (templated).
    :param deployments: the deployments this run changes, a list. (templated)
    :param ttl: how long the lease lasts without renewal: the longest the run may take; a crashed run's lease is
        taken over after it.
    :param wait: how long to wait for another holder to finish; ``0`` refuses at once.
    :param state_db_conn_id: TradeOps' state database; defaults to the config's ``connections.state_db``.
    """

    template_fields: Sequence[str] = ("namespace", "deployments")
    ui_color = "#f6e3c6"

    def __init__(
        self,
        *,
        namespace: str,
        deployments: Sequence[str] | str,
        ttl: timedelta | float = DEFAULT_TTL,
        wait: timedelta | float = timedelta(0),
        state_db_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.namespace = namespace
        self.deployments = deployments
        self.ttl = _seconds(ttl)
        self.wait = _seconds(wait)
        self.state_db_conn_id = state_db_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.changes.locks import DeploymentsBusy

        holder = holder_of(context)
        deployments = [self.deployments] if isinstance(self.deployments, str) else list(self.deployments)
        try:
            _locks(self.state_db_conn_id).acquire(self.namespace, deployments, holder, self.ttl)
        except DeploymentsBusy as busy:
            first = context["ti"].get_first_reschedule_date(context) or datetime.now(UTC)
            waited = datetime.now(UTC) - first
            if waited + POKE <= self.wait:
                self.log.info("%s; waiting (%ds of %ds so far)", busy, waited.total_seconds(), self.wait.seconds)
                raise AirflowRescheduleException(datetime.now(UTC) + POKE) from busy
            raise AirflowFailException(f"{busy} (waited {waited.total_seconds():.0f}s of {self.wait}s)") from busy
        self.log.info("%s holds %s/%s until now + %s", holder, self.namespace, deployments, self.ttl)
        return {"holder": holder, "namespace": self.namespace, "deployments": sorted(set(deployments))}


class ReleaseDeploymentLockOperator(BaseOperator):
    """Give back every deployment lease this run holds (``trigger_rule=all_done``: however the run ended).

    :param state_db_conn_id: TradeOps' state database; defaults to the config's ``connections.state_db``.
    """

    ui_color = "#f6e3c6"

    def __init__(self, *, state_db_conn_id: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.state_db_conn_id = state_db_conn_id

    def execute(self, context: Context) -> int:
        holder = holder_of(context)
        released = _locks(self.state_db_conn_id).release(holder)
        self.log.info("%s released %d deployment lease(s)", holder, released)
        return released
