"""The ``access_review`` section of ``tradeops.yaml``: what ``monthly_access_review`` calls inactive, who approves
the removals it plans, and how long they have."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from tradeops.config.base import _Strict
from tradeops.config.durations import PositiveDuration


class AccessReview(_Strict):
    inactive_after: PositiveDuration = Field(
        default=timedelta(days=90),
        description="a platform user with no successful login and no audited action for this long is inactive",
    )
    added_within: PositiveDuration = Field(
        default=timedelta(days=31),
        description="with no earlier snapshot, bindings created this recently count as added since last month",
    )
    approvers: list[str] = Field(
        default=["security-lead"], min_length=1, description="the Airflow users who may pick the removals"
    )
    approval_timeout: PositiveDuration = Field(
        default=timedelta(hours=8), description="past it, nothing is removed (the default answer)"
    )
    dry_run: bool = Field(default=False, description="the form's default: plan and report only")
