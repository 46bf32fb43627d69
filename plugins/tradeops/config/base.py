"""What every section of ``tradeops.yaml`` shares: strict models, severities, percentages, DNS names, Kubernetes
quantities."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
Percent = Annotated[float, Field(gt=0, le=100)]
Severity = Literal["P1", "P2", "P3", "P4", "security"]

# A Kubernetes resource quantity: a decimal number, then a binary suffix (Ki..Ei), a decimal one (n, u, m, k..E)
# or a decimal exponent (e3, E-2). "E" alone is exa; "E" followed by digits is an exponent.
_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")
_SUFFIX = {
    **{suffix: Decimal(1024) ** power for power, suffix in enumerate(["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"], 1)},
    **{suffix: Decimal(10) ** exponent for suffix, exponent in zip("numkMGTPE", (-9, -6, -3, 3, 6, 9, 12, 15, 18))},
}


def parse_quantity(value: str | int | float) -> Decimal:
    """A Kubernetes quantity as a number: ``"500m"`` and ``"0.5"`` are 0.5, ``"1Gi"`` and ``"1024Mi"`` 1073741824."""
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. '250m', '0.5', '512Mi', '2Gi')")
    number, suffix = match.groups()
    if suffix is None:
        return Decimal(number)
    if suffix in _SUFFIX:
        return Decimal(number) * _SUFFIX[suffix]
    return Decimal(number).scaleb(int(suffix[1:]))  # a decimal exponent


def _quantity_text(value: object) -> str:
    if not isinstance(value, str | int | float):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. '250m', '0.5', '512Mi', '2Gi')")
    parse_quantity(value)
    return str(value)


# A quantity as the config writes it (kept as written, for messages); compare with parse_quantity.
Quantity = Annotated[str, BeforeValidator(_quantity_text)]


class _Strict(BaseModel):
    """Unknown keys are errors: a typo must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)
