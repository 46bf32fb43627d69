"""``blue_green`` in ``tradeops.yaml``: who may approve a blue-green switch, which versions may be deployed, and how
long green is waited for and watched after the switch."""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import Field, field_validator

from tradeops.config.base import _Strict
from tradeops.config.durations import PositiveDuration


class BlueGreen(_Strict):
    """``blue_green_deploy``'s rules.

    ``version_pattern`` is the image tag the form accepts (the full image must also match
    ``kubernetes.allowed_image_pattern``); ``approvers`` are the Airflow users the approval step is assigned to.
    Green's rollout must progress within ``progress_deadline`` and finish within ``rollout_timeout``; after the
    switch green is watched every ``soak_poll`` for ``soak`` and the Service goes back to blue at the first failure.
    """

    version_pattern: str = r"^[0-9]+\.[0-9]+\.[0-9]+$"
    approvers: list[str] = Field(default_factory=lambda: ["ops-manager"], min_length=1)
    approval_timeout: PositiveDuration = timedelta(minutes=30)
    progress_deadline: PositiveDuration = timedelta(minutes=5)
    rollout_timeout: PositiveDuration = timedelta(minutes=10)
    soak: PositiveDuration = timedelta(minutes=10)
    soak_poll: PositiveDuration = timedelta(seconds=15)
    lock_ttl: PositiveDuration = timedelta(hours=2)

    @field_validator("version_pattern")
    @classmethod
    def _anchored(cls, value: str) -> str:
        re.compile(value)
        if not (value.startswith("^") and value.endswith("$")):
            raise ValueError("the version pattern must be anchored (^...$)")
        return value
