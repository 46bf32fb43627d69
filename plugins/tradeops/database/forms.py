"""Trigger forms of the database runbooks: every value is checked when the run is triggered, before it exists."""

from __future__ import annotations

from airflow.sdk import Param

from tradeops.incidents.forms import NO_WHITESPACE

BACKUP_ID = r"^(latest|[a-z0-9_]+-[0-9]{8}T[0-9]{6}Z)$"
RESTORE_TARGET_PREFIX = "restored_"  # the live database never has it (the config refuses such a name)
RESTORE_TARGET = rf"^{RESTORE_TARGET_PREFIX}[a-z0-9_]{{1,54}}$"


def restore_form() -> dict[str, Param]:
    """``db_restore``: which backup, into which new database, dry run by default."""
    return {
        "backup_id": Param(
            "latest",
            type="string",
            pattern=BACKUP_ID,
            **NO_WHITESPACE,
            description="a backup id (folder name) or 'latest'",
        ),
        "target_database": Param(
            type="string",
            pattern=RESTORE_TARGET,
            **NO_WHITESPACE,
            description=f"a NEW database to restore into, named {RESTORE_TARGET_PREFIX}... (so never the live one); "
            "one that exists already is refused before anything is restored",
        ),
        "dry_run": Param(True, type="boolean", description="verify and describe only"),
    }
