"""What a diagnostics archive keeps, within its size budgets: the logs and events collected, and a manifest saying
what was cut, skipped or could not be read. Pure: the operator reads the cluster, this decides what is kept."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any


class DiagnosticsBundle:
    """The files of one diagnostics archive.

    :param max_bytes_per_container: the most bytes kept of one container's log.
    :param max_total_bytes: the most bytes of logs in all.
    :param max_events: the most recent events kept per namespace.
    :param collected_at: when the collection started (in the manifest).
    """

    def __init__(
        self, *, max_bytes_per_container: int, max_total_bytes: int, max_events: int, collected_at: datetime
    ) -> None:
        self.max_bytes_per_container = max_bytes_per_container
        self.budget = max_total_bytes
        self.max_events = max_events
        self.files: dict[str, bytes] = {}
        self.errors: list[str] = []
        self.logs: list[dict[str, Any]] = []
        self.truncated = False
        self.collected_at = collected_at

    def log_limit(self, path: str) -> int | None:
        """How many bytes of the log at ``path`` to read; None (the log marked as skipped) once the total budget is
        spent."""
        if self.budget <= 0:
            self.truncated = True
            self.logs.append({"file": path, "skipped": "total size budget reached"})
            return None
        return min(self.max_bytes_per_container, self.budget)

    def add_log(self, path: str, text: bytes, limit: int) -> None:
        """Keep at most ``limit`` bytes (the :meth:`log_limit` of ``path``) of a log read."""
        text = text[:limit]
        self.budget -= len(text)
        self.files[path] = text
        cut = len(text) >= limit
        self.truncated |= cut
        self.logs.append({"file": path, "bytes": len(text), "truncated": cut})

    def add_events(self, namespace: str, events: list[dict[str, Any]]) -> None:
        """Keep a namespace's most recent events."""
        events = sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        self.files[f"events/{namespace}.json"] = json.dumps(events[-self.max_events :], indent=1).encode()

    def add_error(self, error: Exception) -> None:
        """Note something that could not be read."""
        self.errors.append(str(error))

    def contents(self) -> dict[str, bytes]:
        """Every file of the archive, the manifest (``manifest.json``) last."""
        manifest = {
            "collected_at": self.collected_at.isoformat(),
            "logs": self.logs,
            "errors": self.errors,
            "truncated": self.truncated,
        }
        return {**self.files, "manifest.json": json.dumps(manifest, indent=2).encode()}
