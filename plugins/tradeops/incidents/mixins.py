"""What operators share to reach the incident service (light to import: DAG files parse without the service)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tradeops.incidents.service import IncidentService


class WithIncidentService:
    """An operator's ``incidents``: the one incident service (open, resolve, escalate), built in the task on first
    use."""

    @cached_property
    def incidents(self) -> IncidentService:
        from tradeops.incidents.service import IncidentService

        return IncidentService()
