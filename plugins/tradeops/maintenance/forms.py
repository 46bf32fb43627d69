"""The trigger form of a maintenance window run: breaking the glass, and why."""

from __future__ import annotations

from airflow.sdk import Param


def break_glass_form() -> dict[str, Param]:
    """Start outside the window or while the market is open; the reason is logged."""
    return {
        "break_glass": Param(
            False, type="boolean", description="start outside the window or while the market is open (needs a reason)"
        ),
        "reason": Param("", type="string", maxLength=500, description="why the glass was broken (logged)"),
    }
