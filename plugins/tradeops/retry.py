"""Bounded exponential backoff, the one rule every TradeOps client retries by: the first delay doubles on each
attempt up to a cap, and a server's ``Retry-After`` (seconds) is honoured when it asks for longer."""

from __future__ import annotations

import time
from typing import Any, Protocol


class _Log(Protocol):
    def warning(self, event: Any, *args: Any, **kwargs: Any) -> Any: ...


def backoff_delay(attempt: int, first: float, cap: float, retry_after: str | None = None) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): ``first * 2**(attempt-1)``, at most ``cap``,
    at least the ``Retry-After`` header's seconds when the server sent one."""
    delay = min(first * 2 ** (attempt - 1), cap)
    if retry_after and retry_after.isdigit():
        delay = max(delay, float(retry_after))
    return delay


def wait_before_retry(log: _Log, why: str, retry: int, retries: int, delay: float) -> None:
    """Log the transient failure and the retry it leads to, then sleep ``delay`` seconds."""
    log.warning("%s; retry %d/%d in %.1fs", why, retry, retries, delay)
    time.sleep(delay)
