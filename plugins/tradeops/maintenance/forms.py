"""The trigger form of a maintenance window run: breaking the glass is giving a reason."""

from __future__ import annotations

from airflow.sdk import Param

EMPTY_OR_NOT_BLANK = r"^$|\S"  # JSON Schema patterns search: empty, or at least one character that is not a space


def break_glass_form() -> dict[str, Param]:
    """Empty: the run keeps to the window. A reason: start outside the window or while the market is open, the
    reason logged. A blank reason is refused when the run is triggered."""
    return {
        "break_glass_reason": Param(
            "",
            type="string",
            maxLength=500,
            pattern=EMPTY_OR_NOT_BLANK,
            description="leave empty to keep to the window; to start outside it or while the market is open, say "
            "why (logged)",
        ),
    }
