"""Where reports are written: ``$TRADEOPS_REPORTS_DIR`` (default ``$AIRFLOW_HOME/reports``), one folder per DAG
(or per kind of report). Every write is atomic: a reader never sees half a report."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

TEMPLATES = Path(__file__).resolve().parents[3] / "include" / "templates"  # the reports' and pages' Jinja2 templates

if TYPE_CHECKING:
    import jinja2


def templates(**options: Any) -> jinja2.Environment:
    """The reports' and pages' templates: HTML-escaped, and an undefined name is an error, never an empty string.
    ``options`` are more (or other) ``jinja2.Environment`` options."""
    import jinja2

    settings: dict[str, Any] = {"autoescape": True, "undefined": jinja2.StrictUndefined, **options}
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), **settings)


def reports_dir() -> Path:
    default = Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "reports"
    return Path(os.environ.get("TRADEOPS_REPORTS_DIR") or default)


def write_json_report(dag_id: str, run_id: str, content: dict[str, Any]) -> Path:
    """Write atomically (a reader never sees half a report) and return the path."""
    path = _report_path(dag_id, run_id, ".json")
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(content, indent=2, default=str))
    tmp.replace(path)
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` so that a reader, and a crash, see the old file or the whole new one: a temporary
    file of its own in the same folder (several processes may write the same report at once), flushed to disk,
    then renamed over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the report from the api-server's user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)
    return path


def write_archive(folder: str, name: str, files: dict[str, bytes]) -> Path:
    """Write ``files`` (path in the archive: content) into ``<folder>/<name>.tar.gz`` and return its path."""
    path = _report_path(folder, name, ".tar.gz")
    tmp = path.with_suffix(".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(path)
    return path


def sha256_of(path: Path) -> str:
    """The SHA-256 of the file's bytes, hex: what ``sha256sum`` prints for it."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _report_path(folder: str, name: str, suffix: str) -> Path:
    directory = reports_dir() / folder
    directory.mkdir(parents=True, exist_ok=True)
    return directory / (re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + suffix)
