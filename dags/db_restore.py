"""
### Restore a database backup

The tested restore path for the backups `daily_db_maintenance`/`weekly_maintenance` take (manual trigger only, with
a form in the Airflow UI).

Restores backup `backup_id` (`latest` = the newest complete one) into a **new** database `target_database` on the same
server, then compares every table's row count with the count recorded in the backup's own snapshot. It refuses the
live database's name and any database that already exists, so it can never overwrite data; pointing the platform at
the restored copy is a deliberate, separate step (see the README).

`dry_run` is on by default: the backup is verified (checksums, `pg_restore --list`) and nothing is created.
"""

from __future__ import annotations

from tradeops.dagkit import manual_dag
from tradeops.database.forms import restore_form
from tradeops.database.operators import RestoreBackupOperator

with manual_dag(
    "db_restore",
    owner="dba",
    description="Restore a verified backup into a new database and compare row counts (dry run by default)",
    params=restore_form(),
    render_template_as_native_obj=True,  # the form's dry_run reaches the operator as a boolean
    tags=["database"],
    doc_md=__doc__,
):
    RestoreBackupOperator(
        task_id="restore",
        backup_id="{{ params.backup_id }}",
        target_database="{{ params.target_database }}",
        dry_run="{{ params.dry_run }}",
    )
