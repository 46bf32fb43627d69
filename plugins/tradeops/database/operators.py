"""Operators of the database care: one task per table and step, so a failure is visible and retried on its own."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

UPKEEP_STEPS = ("analyze", "reindex", "vacuum")


class _DatabaseOperator(BaseOperator):
    def __init__(self, *, postgres_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.postgres_conn_id = postgres_conn_id

    def platform(self, config):
        """``(dsn, maintenance settings)`` of the platform database."""
        from tradeops.incidents.store import connection_dsn

        return connection_dsn(self.postgres_conn_id or config.connections.platform_db), config.database.maintenance

    @staticmethod
    def table(config, name: str):
        try:
            return config.database.table(name)
        except KeyError as err:
            raise AirflowFailException(err.args[0]) from None


class RetentionOperator(_DatabaseOperator):
    """Apply ``retention_days`` to one table: drop expired partitions (and create upcoming ones) of a partitioned
    table, or delete in bounded batches within the time budget (``complete`` False: the next run resumes)."""

    template_fields: Sequence[str] = ("table_name",)
    ui_color = "#e6eefc"

    def __init__(self, *, table: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table_name = table

    def execute(self, context) -> dict:
        from tradeops.config import load_config
        from tradeops.database.retention import apply_retention
        from tradeops.database.session import connect

        config = load_config()
        table = self.table(config, self.table_name)
        if not table.retention_days:
            raise AirflowFailException(f"table {table.name!r} has no retention_days")
        dsn, settings = self.platform(config)
        with connect(dsn, settings, application_name=f"tradeops-retention:{table.name}") as conn:
            result = apply_retention(conn, table, settings)
        self.log.info("Retention of %s: %s", table.name, result.to_dict())
        return result.to_dict()


class TableUpkeepOperator(_DatabaseOperator):
    """One upkeep step of one table: ``analyze``, ``reindex`` (concurrently, bloated indexes only, invalid leftovers
    dropped) or ``vacuum`` (plain ``VACUUM (ANALYZE)`` past the dead-tuple thresholds)."""

    template_fields: Sequence[str] = ("table_name",)
    ui_color = "#eef6e6"

    def __init__(self, *, table: str, step: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if step not in UPKEEP_STEPS:
            raise ValueError(f"step must be one of {UPKEEP_STEPS}, got {step!r}")
        self.table_name = table
        self.step = step

    def execute(self, context) -> dict:
        from tradeops.config import load_config
        from tradeops.database import upkeep
        from tradeops.database.session import connect

        config = load_config()
        table = self.table(config, self.table_name)
        dsn, settings = self.platform(config)
        with connect(dsn, settings, application_name=f"tradeops-{self.step}:{table.name}") as conn:
            if self.step == "analyze":
                upkeep.analyze(conn, table.name, settings)
                report = {"table": table.name, "analyzed": True}
            elif self.step == "reindex":
                report = upkeep.reindex_bloated(conn, table.name, settings)
            else:
                report = upkeep.vacuum_if_needed(conn, table.name, settings)
        self.log.info("%s %s: %s", self.step, table.name, report)
        return report


class SizeReportOperator(_DatabaseOperator):
    """Measure every table and index, store the sizes in TradeOps' state database, report growth since last time."""

    ui_color = "#f5f0e1"

    def execute(self, context) -> dict:
        from tradeops.config import load_config
        from tradeops.database import sizes
        from tradeops.database.session import connect
        from tradeops.incidents import store
        from tradeops.reporting.files import write_json_report

        config = load_config()
        dsn, settings = self.platform(config)
        with connect(dsn, settings, application_name="tradeops-size-report") as conn:
            measured = sizes.measure(conn)
        state_dsn = store.connection_dsn(config.connections.state_db)
        store.migrate(state_dsn)
        with store.connect(state_dsn) as state:
            report = sizes.record(state, config.database.name, measured, datetime.now(UTC))
        ti = context["ti"]
        content = {"database": config.database.name, "relations": report,
                   "total_bytes": sum(r["bytes"] for r in report)}
        path = write_json_report(ti.dag_id, f"{ti.run_id}-sizes", content)
        for row in report[:10]:
            growth = row["growth_bytes"]
            self.log.info("%-40s %-5s %12.1f MB %s", row["relation"], row["kind"], row["bytes"] / 2**20,
                          "" if growth is None else f"{growth / 2**20:+.1f} MB")
        self.log.info("Size report written to %s", path)
        return {"path": str(path), "total_bytes": content["total_bytes"], "relations": len(report)}


class DatabaseCheckOperator(_DatabaseOperator):
    """Run one query of :data:`tradeops.database.health.DATABASE_CHECKS`; push its result (``check_result``) and
    fail when it finds a breach, like the health check's checks."""

    ui_color = "#e8f4ea"

    def __init__(self, *, check: str, **kwargs: Any) -> None:
        from tradeops.database.health import DATABASE_CHECKS

        super().__init__(**kwargs)
        if check not in DATABASE_CHECKS:
            raise ValueError(f"unknown database check {check!r}; known: {', '.join(DATABASE_CHECKS)}")
        self.check = check

    def execute(self, context) -> dict:
        from tradeops.checks.base import RESULT_KEY, Status
        from tradeops.config import load_config
        from tradeops.database.health import DATABASE_CHECKS
        from tradeops.database.session import connect

        config = load_config()
        dsn, settings = self.platform(config)
        with connect(dsn, settings, application_name=f"tradeops-check:{self.check}") as conn:
            result = DATABASE_CHECKS[self.check].run(conn, config)
        self.log.info("%s: %s: %s", result.title, result.status.value.upper(), result.summary)
        context["ti"].xcom_push(key=RESULT_KEY, value=result.to_dict())
        if result.status is Status.FAIL:
            raise AirflowException(f"{result.title}: {result.summary}")
        return result.to_dict()


class BackupOperator(_DatabaseOperator):
    """Dump the platform database, verify the backup (checksums, ``pg_restore --list``), restore it into a scratch
    database and compare row counts when ``restore_check`` says so (``"due"``: on the config's cadence), then keep
    only the newest ``backup.keep``. Pushes a ``check_result`` so a failed backup opens an incident like a failed
    check (see :class:`~tradeops.incidents.operators.ReportCheckIncidentsOperator`)."""

    template_fields: Sequence[str] = ("restore_check",)
    ui_color = "#fdf1d6"

    def __init__(self, *, restore_check: str = "due", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.restore_check = restore_check

    def execute(self, context) -> dict:
        from tradeops.checks.base import RESULT_KEY, CheckResult, Status
        from tradeops.config import load_config
        from tradeops.database import backup

        if self.restore_check not in ("due", "always", "never"):
            raise AirflowFailException(f"restore_check must be due, always or never, got {self.restore_check!r}")
        config = load_config()
        dsn, _ = self.platform(config)
        settings = config.database.backup
        root = backup.backup_root(settings)
        ti = context["ti"]
        try:
            partial, manifest = backup.take_backup(dsn, settings)
            verified = backup.verify(partial)
            restored = None
            if self.restore_check == "always" or (
                    self.restore_check == "due" and backup.restore_check_due(root, settings.restore_check_every)):
                restored = backup.restore_check(partial, dsn, settings.jobs)
            folder = backup.publish(partial)
            pruned = backup.prune(root, settings.keep)
        except Exception as err:  # whatever went wrong, there is no verified backup: that is the incident
            result = CheckResult(ti.task_id, "Backup", Status.FAIL, f"{type(err).__name__}: {err}"[:1500])
            ti.xcom_push(key=RESULT_KEY, value=result.to_dict())
            if isinstance(err, backup.BackupError):
                raise AirflowException(str(err)) from None
            raise
        summary = (f"{manifest['id']}: {manifest['bytes'] / 2**20:.1f} MB in {manifest['seconds']} s, "
                   f"{verified['toc_entries']} TOC entries verified"
                   + (f", restored and compared ({restored['rows']:,} rows in {restored['restore_seconds']} s)"
                      if restored else ""))
        ti.xcom_push(key=RESULT_KEY, value=CheckResult(ti.task_id, "Backup", Status.OK, summary).to_dict())
        self.log.info("%s; pruned: %s", summary, pruned or "nothing")
        return {"id": manifest["id"], "path": str(folder), "bytes": manifest["bytes"], "seconds": manifest["seconds"],
                "restore_check": restored, "pruned": pruned}


class RestoreBackupOperator(_DatabaseOperator):
    """The restore path: restore backup ``backup_id`` (``latest`` for the newest) into a **new** database
    ``target_database`` on the same server and compare row counts with the manifest. It never writes into an
    existing database (so never over the live one); switching the platform to the restored copy stays a human
    decision. ``dry_run`` (the default) only verifies the backup and says what would be done."""

    template_fields: Sequence[str] = ("backup_id", "target_database", "dry_run")
    ui_color = "#fde2e2"

    def __init__(self, *, backup_id: str = "latest", target_database: str, dry_run: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backup_id = backup_id
        self.target_database = target_database
        self.dry_run = dry_run

    def execute(self, context) -> dict:
        import re

        import psycopg
        from psycopg import sql

        from tradeops.config import load_config
        from tradeops.database import backup

        config = load_config()
        if not isinstance(self.dry_run, bool):  # the DAG renders params natively: a form value is a boolean
            raise AirflowFailException(f"dry_run must be true or false, got {self.dry_run!r}")
        dry_run = self.dry_run
        target = str(self.target_database).strip()
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", target):
            raise AirflowFailException(f"target_database {target!r} is not a plain lower-case database name")
        if target == config.database.name:
            raise AirflowFailException("refusing to restore over the live database; restore into a new database and "
                                       "switch the platform to it deliberately")
        root = backup.backup_root(config.database.backup)
        found = backup.backups(root)
        if not found:
            raise AirflowFailException(f"no complete backup under {root}")
        chosen = found[0] if self.backup_id == "latest" else next(
            (item for item in found if item[1]["id"] == self.backup_id), None)
        if chosen is None:
            raise AirflowFailException(f"no backup {self.backup_id!r}; have: {[m['id'] for _, m in found[:10]]}")
        folder, manifest = chosen
        dsn, _ = self.platform(config)
        try:
            verified = backup.verify(folder)
            with psycopg.connect(dsn, connect_timeout=10) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target,)).fetchone()
            if exists:
                raise AirflowFailException(f"database {target!r} already exists; choose a new name")
            if dry_run:
                self.log.info("Dry run: would restore %s (%s tables, %s rows) into new database %s", manifest["id"],
                              len(manifest["row_counts"]), sum(manifest["row_counts"].values()), target)
                return {"dry_run": True, "backup": manifest["id"], "target_database": target, "verified": verified}
            with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target)))
            try:
                restored = backup.restore(folder, psycopg.conninfo.make_conninfo(dsn, dbname=target),
                                          config.database.backup.jobs)
            except Exception:
                # The half-restored copy is this task's own creation: drop it so that a retry starts clean.
                with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(target)))
                raise
        except backup.BackupError as err:
            raise AirflowFailException(str(err)) from None
        self.log.info("Restored %s into %s: %s", manifest["id"], target, restored)
        return {"dry_run": False, "backup": manifest["id"], "target_database": target, **restored}
