"""Container logs for the sandbox's pods: deterministic lines per pod, with what the security runbook greps for
(``FAILED_LOGIN`` in auth-service; in api-gateway, access lines over the previous days at a low 401/403 share and
a spike of them in the last minutes)."""

from __future__ import annotations

import hashlib
import math
import os
from datetime import UTC, datetime, time, timedelta

from sandbox.kubernetes import errors

LINES = int(os.environ.get("TRADEOPS_SANDBOX_LOG_LINES", "400"))  # per pod (bench/security_check.py: x10)
# Every pod's lines are 7 s apart, but the gateway's: its last SPIKE_LINES (~9 minutes) answer 401/403 to 60 % of
# requests; the lines before them go back to midday HISTORY_DAYS days ago, one every HISTORY_SPACING s, 2.5 % of them
# 401/403: the first day is partial and the HISTORY_DAYS - 1 days before today are whole, at any time of day.
SPIKE_LINES = min(80, LINES)
SPIKE_PICKS = (0, 2, 4, 5, 6, 8, 9, 11, 13, 15, 17, 19)
HISTORY_DAYS = 8
HISTORY_SPACING = max(1, HISTORY_DAYS * 86_400 // max(1, LINES - SPIKE_LINES))


def _lines(pod: dict, container: str, now: datetime) -> list[tuple[datetime, str]]:
    """The same lines for the same pod every time; the last one is stamped ``now``."""
    app = (pod["metadata"].get("labels") or {}).get("app", container)
    seed = hashlib.sha256(pod["metadata"]["name"].encode()).digest()
    if app == "api-gateway":
        return _gateway_history(seed, now) + _gateway_spike(seed, now)
    start = now - timedelta(seconds=(LINES - 1) * 7)
    out = []
    for n in range(LINES):
        moment = start + timedelta(seconds=n * 7)
        pick = (seed[n % len(seed)] + n) % 20
        if app == "auth-service" and pick in (3, 11) and n % max(1, LINES // 400) == 0:  # as many, however long
            user = f"user{(n % 38) + 1:02d}"
            line = f"WARN auth FAILED_LOGIN user={user} ip=203.0.113.{(n * 7) % 250 + 1} reason=bad_password"
        else:
            line = f"INFO {app} heartbeat seq={n} queue_depth={seed[n % 32] % 9}"
        out.append((moment, line))
    return out


def _denied(code: int, n: int, seed: bytes) -> str:
    return (
        f"INFO access method=POST path=/v1/orders status={code} client=198.51.100.{(n * 3) % 250 + 1} "
        f"latency_ms={(seed[n % 32] % 40) + 2}"
    )


def _allowed(n: int, seed: bytes) -> str:
    return f"INFO access method=GET path=/v1/positions status=200 latency_ms={(seed[n % 32] % 20) + 1}"


def _gateway_history(seed: bytes, now: datetime) -> list[tuple[datetime, str]]:
    """The gateway's lines before its spike, from midday HISTORY_DAYS days before ``now``'s day (a window anchored
    to the days, not sliding with ``now``, so that which days it holds whole never depends on the time of day). They
    sit on a grid of slots counted from the epoch (slot ``k`` at ``k * HISTORY_SPACING`` s), each with a fixed
    answer, so a day the log holds whole reads the same counts however often the log is read."""
    spike_start = now - timedelta(seconds=(SPIKE_LINES - 1) * 7)
    last = math.ceil(spike_start.timestamp() / HISTORY_SPACING) - 1
    midday = datetime.combine(now.astimezone(UTC).date() - timedelta(days=HISTORY_DAYS), time(12), UTC)
    out = []
    for k in range(math.ceil(midday.timestamp() / HISTORY_SPACING), last + 1):
        line = _denied(401 if k % 80 == 0 else 403, k, seed) if k % 40 == 0 else _allowed(k, seed)
        out.append((datetime.fromtimestamp(k * HISTORY_SPACING, UTC), line))
    return out


def _gateway_spike(seed: bytes, now: datetime) -> list[tuple[datetime, str]]:
    """The gateway's last SPIKE_LINES, 7 s apart up to ``now``: 401/403 on 60 % of them."""
    start = now - timedelta(seconds=(SPIKE_LINES - 1) * 7)
    out = []
    for n in range(SPIKE_LINES):
        pick = (seed[n % len(seed)] + n) % 20
        line = _denied(401 if pick != 15 else 403, n, seed) if pick in SPIKE_PICKS else _allowed(n, seed)
        out.append((start + timedelta(seconds=n * 7), line))
    return out


def pod_log(
    pod: dict,
    container: str | None = None,
    tail: str | None = None,
    timestamps: bool = False,
    since: str | None = None,
    limit_bytes: str | None = None,
) -> str:
    containers = [c["name"] for c in pod["spec"].get("containers") or []]
    if container is None:
        if len(containers) > 1:
            raise errors.bad_request(
                f"a container name must be specified for pod {pod['metadata']['name']}, choose "
                f"one of: [{' '.join(containers)}]"
            )
        container = containers[0] if containers else ""
    elif container not in containers:
        raise errors.bad_request(f"container {container} is not valid for pod {pod['metadata']['name']}")
    now = datetime.now(UTC)
    lines = _lines(pod, container, now)
    if since:
        lines = [(m, t) for m, t in lines if m >= now - timedelta(seconds=int(since))]
    if tail is not None and int(tail) >= 0:
        lines = lines[-int(tail) :] if int(tail) else []
    text = "".join(f"{m.strftime('%Y-%m-%dT%H:%M:%S.000000000Z')} {t}\n" if timestamps else f"{t}\n" for m, t in lines)
    return text[: int(limit_bytes)] if limit_bytes else text
