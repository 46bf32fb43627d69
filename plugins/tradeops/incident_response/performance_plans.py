"""What the performance-degradation response reads as degraded and would change, as plain data (pure: the operators
read the platform, this decides): the top CPU and memory consumers, the degraded components, each degraded
deployment scaled up by a step but never past its configured ``replicas.max`` (and never down), the tables whose
planner statistics are refreshed, and (only when chosen) the cache keys a flush would delete."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Component = Mapping[str, Any]  # one component of the platform's GET /v1/system/status


def memory_pct(component: Component) -> float | None:
    """The share of its memory limit a component uses (None: it reports no memory)."""
    used, limit = component.get("memory_used_bytes"), component.get("memory_limit_bytes")
    return round(100 * used / limit, 1) if used is not None and limit else None


def top_consumers(components: Sequence[Component], top: int) -> dict[str, list[dict[str, Any]]]:
    """The ``top`` components by CPU and by memory share (``kubectl top``'s two sorts), highest first."""
    measured = [
        {"name": c["name"], "cpu_pct": c["cpu_pct"], "memory_pct": memory_pct(c)}
        for c in components
        if c.get("cpu_pct") is not None
    ]
    return {
        "cpu": sorted(measured, key=lambda c: (-c["cpu_pct"], c["name"]))[:top],
        "memory": sorted(measured, key=lambda c: (-(c["memory_pct"] or 0), c["name"]))[:top],
    }


def degraded(components: Sequence[Component], cpu_above: float, memory_above: float) -> dict[str, str]:
    """``{component: why}`` for every component unhealthy, or above either share."""
    found = {}
    for component in components:
        reasons = []
        if component.get("status", "healthy") != "healthy":
            reasons.append(str(component["status"]))
        if (cpu := component.get("cpu_pct")) is not None and cpu > cpu_above:
            reasons.append(f"CPU {cpu:g}% > {cpu_above:g}%")
        if (memory := memory_pct(component)) is not None and memory > memory_above:
            reasons.append(f"memory {memory:g}% > {memory_above:g}%")
        if reasons:
            found[component["name"]] = ", ".join(reasons)
    return found


def wanted_replicas(replicas: Mapping[str, int], degraded_names: Sequence[str], step: int) -> dict[str, int]:
    """``step`` more replicas for each degraded deployment among ``replicas`` (the scalable ones)."""
    return {name: count + step for name, count in replicas.items() if name in degraded_names}


def scale_plan(
    replicas: Mapping[str, int], wanted: Mapping[str, int], limits: Mapping[str, int | None]
) -> list[dict[str, Any]]:
    """Each deployment to what is wanted, capped at its limit: never past it, never down, never one without a limit
    (``None``), never one at 0 (stopped on purpose, e.g. by the critical runbook: a restore starts it, not this);
    what is already there is left out."""
    plan = []
    for name, want in sorted(wanted.items()):
        limit, before = limits.get(name), replicas[name]
        if limit is None or before == 0:
            continue
        after = min(want, limit)
        if after > before:
            plan.append({"action": "scale", "target": name, "before": before, "after": after, "max": limit})
    return plan


def performance_plan(
    scale: Sequence[Mapping[str, Any]], tables: Sequence[str], flush_prefix: str | None, flush_keys: int
) -> list[dict[str, Any]]:
    """The changes in the order the runbook makes them: refresh the statistics (``ANALYZE``, no lock on writers),
    scale, then flush the keys starting with ``flush_prefix`` (None: not chosen)."""
    plan: list[dict[str, Any]] = [{"action": "analyze", "target": ", ".join(tables), "tables": list(tables)}]
    plan += [dict(change) for change in scale]
    if flush_prefix is not None:
        plan.append({"action": "flush", "target": flush_prefix, "keys": flush_keys})
    return plan


def render(plan: Sequence[Mapping[str, Any]], degraded_found: Mapping[str, str]) -> str:
    """One line per change (and the degraded components), for the log, Slack, the approval and the incident."""
    verbs = {
        "analyze": "refresh planner statistics (ANALYZE): {target}",
        "scale": "scale {target} {before} → {after} (max {max})",
        "flush": "flush the cache keys starting with '{target}' ({keys} now; SCAN + UNLINK)",
    }
    lines = [f"• degraded: {name} ({why})" for name, why in sorted(degraded_found.items())] or ["• nothing degraded"]
    if not any(change["action"] == "scale" for change in plan):
        lines.append("• nothing to scale (none degraded below its max)")
    return "\n".join(lines + ["• " + verbs[change["action"]].format(**change) for change in plan])


def bounded(rows: Sequence[Mapping[str, Any]], top: int, keys: Sequence[str]) -> list[dict[str, Any]]:
    """The first ``top`` rows, each with only ``keys`` (what the incident's trail keeps of a diagnostic)."""
    return [{key: row.get(key) for key in keys} for row in rows[:top]]
