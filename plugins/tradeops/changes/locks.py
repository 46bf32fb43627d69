"""One change at a time per deployment: a lease per ``(namespace, deployment)`` in TradeOps' state database
(``tradeops.change_locks``, migration ``006_change_locks.sql``).

A runbook takes the leases of every deployment it changes, all or nothing, in one statement (so two runbooks
never hold half of each other's set, and there is no lock-ordering deadlock to reason about). The same holder
taking them again renews them (a retried task is idempotent); a lease past its expiry (a crashed run) is taken
over; anything else refuses with a message naming the holder, since when, and until when.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from airflow.sdk.exceptions import AirflowException

from tradeops.exceptions import TradeOpsError
from tradeops.incidents import store


@dataclass(frozen=True)
class Lease:
    """A row of ``tradeops.change_locks``."""

    namespace: str
    deployment: str
    holder: str
    acquired_at: datetime
    expires_at: datetime


class DeploymentsBusy(TradeOpsError, AirflowException):
    """Another run holds the lease of some of the deployments: the message names the holder, since and expiry."""

    def __init__(self, leases: Sequence[Lease]):
        self.leases = list(leases)
        held = "; ".join(
            f"{lease.namespace}/{lease.deployment} is held by {lease.holder} "
            f"since {lease.acquired_at:%Y-%m-%d %H:%M:%S} UTC (expires {lease.expires_at:%H:%M:%S} UTC)"
            for lease in self.leases
        )
        super().__init__(f"deployments busy: {held}")

    @property
    def holders(self) -> list[str]:
        return sorted({lease.holder for lease in self.leases})


_TAKE = """
INSERT INTO tradeops.change_locks AS l (namespace, deployment, holder, expires_at)
SELECT %(namespace)s, d, %(holder)s, now() + %(ttl)s FROM unnest(%(deployments)s::text[]) AS d ORDER BY d
ON CONFLICT (namespace, deployment) DO UPDATE
   SET holder = EXCLUDED.holder,
       expires_at = EXCLUDED.expires_at,
       acquired_at = CASE WHEN l.holder = EXCLUDED.holder THEN l.acquired_at ELSE now() END
 WHERE l.holder = EXCLUDED.holder OR l.expires_at <= now()
RETURNING deployment
"""


class ChangeLocks:
    """The deployment leases of the state database ``dsn``."""

    def __init__(self, dsn: str):
        self.dsn = dsn

    def acquire(self, namespace: str, deployments: Sequence[str], holder: str, ttl: timedelta) -> None:
        """Take (or renew) the leases of all ``deployments`` for ``holder`` until now + ``ttl``, or none of them:
        raises :class:`DeploymentsBusy` when another holder's unexpired lease covers any of them."""
        wanted = sorted(set(deployments))
        with store.connect(self.dsn) as conn, conn.transaction():
            taken = {
                row["deployment"]
                for row in conn.execute(
                    _TAKE, {"namespace": namespace, "deployments": wanted, "holder": holder, "ttl": ttl}
                )
            }
            if taken == set(wanted):
                return
            busy = [name for name in wanted if name not in taken]
            rows = conn.execute(
                "SELECT * FROM tradeops.change_locks WHERE namespace = %s AND deployment = ANY(%s) ORDER BY deployment",
                (namespace, busy),
            ).fetchall()
            raise DeploymentsBusy([Lease(**row) for row in rows])  # rolls back: all or nothing

    def release(self, holder: str) -> int:
        """Give back every lease ``holder`` holds; returns how many."""
        with store.connect(self.dsn) as conn:
            return conn.execute("DELETE FROM tradeops.change_locks WHERE holder = %s", (holder,)).rowcount

    def held(self, namespace: str | None = None) -> list[Lease]:
        """The leases in force now (unexpired), optionally of one namespace."""
        with store.connect(self.dsn) as conn:
            rows = conn.execute(
                "SELECT * FROM tradeops.change_locks WHERE expires_at > now() "
                "AND (%(ns)s::text IS NULL OR namespace = %(ns)s) ORDER BY namespace, deployment",
                {"ns": namespace},
            ).fetchall()
        return [Lease(**row) for row in rows]
