"""Connections to the platform database with the settings every maintenance step runs under."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import psycopg
from psycopg import errors
from psycopg.rows import DictRow, dict_row

from tradeops.config.database import Maintenance
from tradeops.exceptions import LockRetriesExhausted

log = logging.getLogger("airflow.task.tradeops.database")
T = TypeVar("T")
Session = psycopg.Connection[DictRow]  # what connect() opens: rows are dicts


@contextmanager
def connect(dsn: str, settings: Maintenance, *, application_name: str, autocommit: bool = True) -> Iterator[Session]:
    """A session that waits at most ``lock_timeout_ms`` for any lock and ``statement_timeout_ms`` for any statement,
    named so that ``pg_stat_activity`` says who it is."""
    options = (
        f"-c lock_timeout={settings.lock_timeout_ms} -c statement_timeout={settings.statement_timeout_ms} "
        "-c timezone=UTC"
    )
    with psycopg.connect(
        dsn,
        autocommit=autocommit,
        row_factory=dict_row,
        connect_timeout=10,
        application_name=application_name,
        options=options,
    ) as conn:
        yield conn


def with_lock_retries(
    action: Callable[[], T], settings: Maintenance, what: str, sleep: Callable[[float], None] = time.sleep
) -> T:
    """Run ``action``; when it times out on a lock, back off (0.5 s, 1 s, 2 s... capped at 30 s) and try again up to
    ``lock_retries`` times, then raise :class:`LockRetriesExhausted`. Each failed attempt leaves the lock queue at
    once, so writers wait at most ``lock_timeout_ms`` behind it."""
    attempts = settings.lock_retries + 1
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except errors.LockNotAvailable as err:
            if attempt == attempts:
                raise LockRetriesExhausted(
                    f"{what}: gave up after {attempts} attempts, each bounded by its lock timeout "
                    f"({err.diag.message_primary})"
                ) from err
            pause = min(0.5 * 2 ** (attempt - 1), 30.0)
            log.warning(
                "%s: lock not available within its lock timeout (attempt %s/%s); retrying in %.1f s",
                what,
                attempt,
                attempts,
                pause,
            )
            sleep(pause)
    raise AssertionError("unreachable")
