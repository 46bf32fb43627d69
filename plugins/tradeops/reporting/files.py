"""Where reports are written: ``$TRADEOPS_REPORTS_DIR`` (default ``$AIRFLOW_HOME/reports``), one folder per DAG."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any


def reports_dir() -> Path:
    default = Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "reports"
    return Path(os.environ.get("TRADEOPS_REPORTS_DIR") or default)


def write_json_report(dag_id: str, run_id: str, content: dict[str, Any]) -> Path:
    """Write atomically (a reader never sees half a report) and return the path."""
    folder = reports_dir() / dag_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id) + ".json")
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(content, indent=2, default=str))
    tmp.replace(path)
    return path
