"""The cache of seeded PostgreSQL clusters (``$TRADEOPS_CACHE_DIR``, default ``~/.cache/tradeops``): one per day,
size and schema, so only a sandbox's first start of the day seeds the platform database."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("TRADEOPS_CACHE_DIR") or Path.home() / ".cache" / "tradeops")


def forget_old_templates() -> None:
    """Seeded clusters of earlier days are stale (their data is relative to the day they were made)."""
    for old in cache_dir().glob("pgdata-*"):
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)


@contextlib.contextmanager
def templates_locked(*, exclusive: bool, timeout: float = 300):
    """Sandboxes sharing a cache directory read a template under a shared lock and write or forget templates under
    an exclusive one, so none copies a cluster another is still writing or deleting."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "templates.lock", "a") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the template cache {folder} stayed locked {timeout:.0f}s") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
