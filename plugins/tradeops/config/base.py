"""What every section of ``tradeops.yaml`` shares: strict models, severities, percentages, DNS names."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
Percent = Annotated[float, Field(gt=0, le=100)]
Severity = Literal["P1", "P2", "P3", "P4", "security"]


class _Strict(BaseModel):
    """Unknown keys are errors: a typo must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)
