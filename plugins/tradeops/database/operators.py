"""Operators of the database care: one task per table and step, so a failure is visible and retried on its own.

The database's health queries are checks (:mod:`tradeops.database.checks`), run by
:class:`~tradeops.checks.operators.CheckOperator`; the backup is a check run by :class:`BackupOperator`. The SQL
lives in the modules of each step, never here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from tradeops.checks.operators import CheckOperator
from tradeops.database.checks import BackupCheck

if TYPE_CHECKING:
    from airflow.sdk import Context

    from tradeops.config import TradeOpsConfig
    from tradeops.config.database import Table

UPKEEP_STEPS = ("analyze", "reindex", "vacuum")


class _PlatformDatabaseOperator(BaseOperator):
    """A step on the platform database.

    :param postgres_conn_id: the platform database's connection (default: the config's ``connections.platform_db``).
    """

    def __init__(self, *, postgres_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.postgres_conn_id = postgres_conn_id

    def platform_dsn(self, config: TradeOpsConfig) -> str:
        from tradeops.connections import postgres_dsn

        return postgres_dsn(self.postgres_conn_id or config.connections.platform_db)

    @staticmethod
    def table(config: TradeOpsConfig, name: str) -> Table:
        try:
            return config.database.table(name)
        except KeyError as err:
            raise AirflowFailException(err.args[0]) from None


class RetentionOperator(_PlatformDatabaseOperator):
    """Apply ``retention_days`` to one table: drop expired partitions (and create upcoming ones) of a partitioned
    table, or delete in bounded batches within the time budget (``complete`` False: the next run resumes).

    :param table: the table, by its name in the config's ``database.tables``; it must have ``retention_days``.
        (templated)
    :param postgres_conn_id: the Airflow connection of the platform database; by default the config's
        ``connections.platform_db``.
    """

    template_fields: Sequence[str] = ("table_name",)
    ui_color = "#e6eefc"

    def __init__(self, *, table: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table_name = table

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.config import load_config
        from tradeops.database.retention import apply_retention
        from tradeops.database.session import connect

        config = load_config()
        table = self.table(config, self.table_name)
        if not table.retention_days:
            raise AirflowFailException(f"table {table.name!r} has no retention_days")
        settings = config.database.maintenance
        with connect(self.platform_dsn(config), settings, application_name=f"tradeops-retention:{table.name}") as conn:
            result = apply_retention(conn, table, settings)
        self.log.info("Retention of %s: %s", table.name, result.to_dict())
        return result.to_dict()


class TableUpkeepOperator(_PlatformDatabaseOperator):
    """One upkeep step of one table: ``analyze``, ``reindex`` (concurrently, bloated indexes only, invalid leftovers
    dropped) or ``vacuum`` (plain ``VACUUM (ANALYZE)`` past the dead-tuple thresholds).

    :param table: the table, by its name in the config's ``database.tables``. (templated)
    :param step: ``analyze``, ``reindex`` or ``vacuum``.
    :param postgres_conn_id: the Airflow connection of the platform database; by default the config's
        ``connections.platform_db``.
    """

    template_fields: Sequence[str] = ("table_name",)
    ui_color = "#eef6e6"

    def __init__(self, *, table: str, step: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if step not in UPKEEP_STEPS:
            raise ValueError(f"step must be one of {UPKEEP_STEPS}, got {step!r}")
        self.table_name = table
        self.step = step

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.config import load_config
        from tradeops.database import upkeep
        from tradeops.database.session import connect

        config = load_config()
        table = self.table(config, self.table_name)
        settings = config.database.maintenance
        report: dict[str, Any]
        name = f"tradeops-{self.step}:{table.name}"
        with connect(self.platform_dsn(config), settings, application_name=name) as conn:
            if self.step == "analyze":
                upkeep.analyze(conn, table.name, settings)
                report = {"table": table.name, "analyzed": True}
            elif self.step == "reindex":
                report = upkeep.reindex_bloated(conn, table.name, settings)
            else:
                report = upkeep.vacuum_if_needed(conn, table.name, settings)
        self.log.info("%s %s: %s", self.step, table.name, report)
        return report


class SizeReportOperator(_PlatformDatabaseOperator):
    """Measure every table and index, store the sizes in TradeOps' state database (``connections.state_db``, its
    schema migrated by the deployment), report growth since last time and write the report as JSON.

    :param postgres_conn_id: the Airflow connection of the platform database; by default the config's
        ``connections.platform_db``.
    """

    ui_color = "#f5f0e1"

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.config import load_config
        from tradeops.connections import postgres_dsn
        from tradeops.database import sizes
        from tradeops.database.session import connect
        from tradeops.reporting.files import write_json_report

        config = load_config()
        with connect(
            self.platform_dsn(config), config.database.maintenance, application_name="tradeops-size-report"
        ) as conn:
            measured = sizes.measure(conn)
        report = sizes.record(
            postgres_dsn(config.connections.state_db), config.database.name, measured, datetime.now(UTC)
        )
        ti = context["ti"]
        content = {
            "database": config.database.name,
            "relations": report,
            "total_bytes": sum(r["bytes"] for r in report),
        }
        path = write_json_report(ti.dag_id, f"{ti.run_id}-sizes", content)
        for row in report[:10]:
            growth = row["growth_bytes"]
            self.log.info(
                "%-40s %-5s %12.1f MB %s",
                row["relation"],
                row["kind"],
                row["bytes"] / 2**20,
                "" if growth is None else f"{growth / 2**20:+.1f} MB",
            )
        self.log.info("Size report written to %s", path)
        return {"path": str(path), "total_bytes": content["total_bytes"], "relations": len(report)}


class BackupOperator(CheckOperator):
    """Take a verified backup of the platform database: the :class:`~tradeops.database.checks.BackupCheck` (dump,
    verify, restore-check when ``restore_check`` says so, publish, keep the newest ``database.backup.keep``) as a
    check task. Its result is pushed as ``check_result`` whatever happens, so a failed backup opens an incident like
    a failed check; the task returns what was backed up (``id``, ``path``, ``bytes``, ``seconds``,
    ``restore_check``, ``pruned``).

    :param restore_check: when to restore the backup into a scratch database and compare row counts: ``due`` (when
        the last restore-checked backup is older than ``database.backup.restore_check_every``), ``always`` or
        ``never``. (templated)
    :param postgres_conn_id: the Airflow connection of the platform database; by default the config's
        ``connections.platform_db``.
    """

    template_fields: Sequence[str] = ("restore_check",)
    ui_color = "#fdf1d6"

    def __init__(self, *, restore_check: str = "due", postgres_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(check=BackupCheck(postgres_conn_id=postgres_conn_id), **kwargs)
        self.restore_check = restore_check
        self.postgres_conn_id = postgres_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        try:  # rendered by now
            self.check = BackupCheck(self.restore_check, self.postgres_conn_id)
        except ValueError as err:
            raise AirflowFailException(str(err)) from None
        taken: dict[str, Any] = super().execute(context)["details"]
        self.log.info("Pruned: %s", ", ".join(taken["pruned"]) or "nothing")
        return taken


class RestoreBackupOperator(_PlatformDatabaseOperator):
    """The restore path: restore backup ``backup_id`` (``latest`` for the newest) into a **new** database
    ``target_database`` on the same server and compare row counts with the manifest. It never writes into an
    existing database (so never over the live one); switching the platform to the restored copy stays a human
    decision. ``dry_run`` (the default) only verifies the backup and says what would be done.

    :param backup_id: the backup to restore (its folder name), or ``latest``. (templated)
    :param target_database: the new database to restore into: a plain lower-case name, not the live database's, of
        no existing database. (templated)
    :param dry_run: only verify the backup and say what would be done; a boolean (the DAG renders its params
        natively). (templated)
    :param postgres_conn_id: the Airflow connection of the platform database (its server is restored to); by default
        the config's ``connections.platform_db``.
    """

    template_fields: Sequence[str] = ("backup_id", "target_database", "is_dry_run")
    ui_color = "#fde2e2"

    def __init__(
        self, *, backup_id: str = "latest", target_database: str, dry_run: bool | str = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.backup_id = backup_id
        self.target_database = target_database
        self.is_dry_run = dry_run  # not ``dry_run``: that is BaseOperator's method

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.config import load_config
        from tradeops.database import backup
        from tradeops.exceptions import BackupError

        config = load_config()
        if not isinstance(self.is_dry_run, bool):  # the DAG renders params natively: a form value is a boolean
            raise AirflowFailException(f"dry_run must be true or false, got {self.is_dry_run!r}")
        target = str(self.target_database).strip()
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", target):
            raise AirflowFailException(f"target_database {target!r} is not a plain lower-case database name")
        if target == config.database.name:
            raise AirflowFailException(
                "refusing to restore over the live database; restore into a new database and "
                "switch the platform to it deliberately"
            )
        dsn = self.platform_dsn(config)
        try:
            folder, manifest = backup.find_backup(backup.backup_root(config.database.backup), self.backup_id)
            verified = backup.verify(folder)
            if backup.database_exists(dsn, target):
                raise AirflowFailException(f"database {target!r} already exists; choose a new name")
            if self.is_dry_run:
                self.log.info(
                    "Dry run: would restore %s (%s tables, %s rows) into new database %s",
                    manifest["id"],
                    len(manifest["row_counts"]),
                    sum(manifest["row_counts"].values()),
                    target,
                )
                return {"dry_run": True, "backup": manifest["id"], "target_database": target, "verified": verified}
            restored = backup.restore_into_new_database(folder, dsn, target, config.database.backup.jobs)
        except BackupError as err:
            raise AirflowFailException(str(err)) from None
        self.log.info("Restored %s into %s: %s", manifest["id"], target, restored)
        return {"dry_run": False, "backup": manifest["id"], "target_database": target, **restored}
