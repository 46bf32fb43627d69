"""Waiting for what another process does (the scheduler, an app, the sandbox): one poll loop for the tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(find: Callable[[], T], timeout: float = 120, every: float = 0.1, what: str = "") -> T:
    """``find()``'s first truthy answer, asked every ``every`` seconds; ``TimeoutError`` (naming ``what``) when
    none came within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := find():
            return found
        time.sleep(every)
    raise TimeoutError(f"{what or 'nothing'}: not after {timeout:.0f} s")
