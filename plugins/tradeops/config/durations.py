"""How ``tradeops.yaml`` writes a duration: ``"90m"``, ``"-60m"``, ``"1h30m"``, ``"45s"``, ``"2d"``; read into a
``timedelta`` and written back the same way (JSON, messages, UI summaries)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, PlainSerializer

_DURATION_PART = re.compile(r"(\d+)([dhms])")
_DURATION = re.compile(r"^([+-])?((?:\d+[dhms])+)$")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: object) -> timedelta:
    """Parse ``"90m"``, ``"-60m"``, ``"1h30m"``, ``"45s"`` or ``"2d"`` into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f"a duration must be a string such as '90m' or '-1h30m', got {value!r}")
    match = _DURATION.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a duration; write it as '90m', '-60m', '1h30m', '45s' or '2d'")
    sign, body = match.groups()
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(body))
    return timedelta(seconds=-seconds if sign == "-" else seconds)


def format_duration(value: timedelta) -> str:
    """The inverse of :func:`parse_duration`, for messages and UI summaries (``-90m`` -> ``"-1h30m"``)."""
    seconds = int(value.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    parts = []
    for unit, size in _UNIT_SECONDS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + ("".join(parts) or "0m")


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be a positive duration")
    return value


_AS_TEXT = PlainSerializer(lambda value: format_duration(value), return_type=str, when_used="json")
Duration = Annotated[timedelta, BeforeValidator(parse_duration), _AS_TEXT]
PositiveDuration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive), _AS_TEXT]
