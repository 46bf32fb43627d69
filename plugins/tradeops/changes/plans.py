"""Dry-run plans: what a runbook would change, object by object and field by field, from what to what."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class PlannedChange:
    """One field of one object that a step would change (``field`` e.g. ``image[api]``, ``spec.replicas``,
    ``spec.selector``, ``(create)``, ``(delete)``)."""

    kind: str
    namespace: str
    name: str
    field: str
    before: Any
    after: Any

    def as_dict(self) -> dict[str, Any]:
        """Plain data for XCom."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlannedChange:
        return cls(**data)


def _cell(value: Any) -> str:
    text = "—" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def render_plan(changes: Sequence[PlannedChange]) -> str:
    """The plan as a Markdown table: object, field, from, to (one row per change; a line when there is none)."""
    if not changes:
        return "No changes."
    rows = ["| object | field | from | to |", "| --- | --- | --- | --- |"]
    rows += [
        f"| {c.kind}/{c.namespace}/{c.name} | {_cell(c.field)} | {_cell(c.before)} | {_cell(c.after)} |"
        for c in changes
    ]
    return "\n".join(rows)


def plan_from_xcom(values: Iterable[dict[str, Any]]) -> list[PlannedChange]:
    """The plan back from its XCom form (plain dicts)."""
    return [PlannedChange.from_dict(v) for v in values]
