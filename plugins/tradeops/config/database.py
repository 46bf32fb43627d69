"""The ``database`` section of ``tradeops.yaml``: the platform's tables, and how the daily maintenance and the
backups treat a live database."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, PositiveInt, field_validator

from tradeops.config.base import Percent, _Strict
from tradeops.config.durations import PositiveDuration


class Table(_Strict):
    name: str = Field(pattern=r"^[a-z_][a-z0-9_]*$", max_length=63)
    time_column: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_]*$")
    retention_days: PositiveInt | None = None
    partitioning: Literal["daily"] | None = None
    heavy: bool = Field(default=False, description="reindexed and vacuumed by the daily maintenance")


class Maintenance(_Strict):
    """How the daily maintenance treats a live database: small transactions, short lock waits, a time budget."""

    batch_rows: PositiveInt = Field(default=10_000, le=1_000_000, description="rows per retention transaction")
    batch_pause_ms: int = Field(default=50, ge=0, le=10_000, description="pause between batches, for writers")
    lock_timeout_ms: int = Field(
        default=2_000,
        ge=10,
        le=60_000,
        description="give up a lock wait after this, rather than queue writers behind it",
    )
    statement_timeout_ms: int = Field(default=30_000, ge=100, le=3_600_000)
    lock_retries: int = Field(default=5, ge=0, le=50, description="attempts after a lock timeout, with backoff")
    time_budget: PositiveDuration = timedelta(minutes=20)
    partitions_ahead_days: int = Field(default=7, ge=1, le=90)
    reindex_lock_timeout_ms: int = Field(
        default=60_000,
        ge=10,
        le=3_600_000,
        description="lock waits of a concurrent rebuild: they queue no writer, and giving up wastes the build",
    )
    reindex_min_bloat_pct: Percent = 30
    reindex_min_size_mb: float = Field(default=8, ge=0)
    vacuum_min_dead_pct: Percent = 10
    vacuum_min_dead_tuples: int = Field(default=1_000, ge=0)
    long_query_after: PositiveDuration = timedelta(minutes=5)
    xid_age_warn: int = Field(default=500_000_000, gt=0)
    xid_age_fail: int = Field(default=1_200_000_000, gt=0, lt=2**31)


class Backup(_Strict):
    """``pg_dump`` of the platform database; ``$TRADEOPS_BACKUP_DIR`` overrides ``directory``."""

    directory: str = "/var/backups/tradeops"
    format: Literal["directory", "custom"] = "directory"
    jobs: int = Field(default=2, ge=1, le=16, description="parallel dump/restore jobs (directory format)")
    compression: int = Field(default=1, ge=0, le=9, description="gzip level; 1 is the fastest on few cores")
    keep: int = Field(default=7, ge=1, le=365, description="backups kept; older ones are deleted")
    lock_wait_timeout_s: int = Field(
        default=60, ge=1, le=3600, description="pg_dump gives up when a table stays locked this long"
    )
    restore_check_every: PositiveDuration = Field(
        default=timedelta(days=7),
        description="restore into a scratch database when the last restore-verified backup is older than this",
    )


class Database(_Strict):
    name: str = Field(description="the live database; never named restored_... (the name of restored copies)")
    tables: list[Table] = Field(min_length=1)
    maintenance: Maintenance = Maintenance()
    backup: Backup = Backup()

    @field_validator("name")
    @classmethod
    def _not_a_restore_target(cls, name: str) -> str:
        if name.startswith("restored_"):
            raise ValueError("restored_... names restored copies (db_restore's targets), never the live database")
        return name

    def table(self, name: str) -> Table:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(f"no table named {name!r} in the TradeOps config's database.tables")
