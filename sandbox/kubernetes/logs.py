"""Container logs for the sandbox's pods: deterministic lines per pod, with what the security runbook greps for
(``FAILED_LOGIN`` in auth-service, 401/403 access lines in api-gateway, spiking in the last minutes)."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta

from sandbox.kubernetes import errors

LINES = int(os.environ.get("TRADEOPS_SANDBOX_LOG_LINES", "400"))  # per pod, 7 s apart (bench/security_check.py: x10)
SPIKE_FROM = LINES - 80  # the gateway's last ~9 minutes: 401/403 on 60 % of requests, against 10 % before
SPIKE_PICKS = (0, 2, 4, 5, 6, 8, 9, 11, 13, 15, 17, 19)


def _lines(pod: dict, container: str, now: datetime) -> list[tuple[datetime, str]]:
    """The same lines for the same pod every time; the last one is stamped ``now``."""
    app = (pod["metadata"].get("labels") or {}).get("app", container)
    start = now - timedelta(seconds=(LINES - 1) * 7)
    seed = hashlib.sha256(pod["metadata"]["name"].encode()).digest()
    out = []
    for n in range(LINES):
        moment = start + timedelta(seconds=n * 7)
        pick = (seed[n % len(seed)] + n) % 20
        if app == "auth-service" and pick in (3, 11) and n % max(1, LINES // 400) == 0:  # as many, however long
            user = f"user{(n % 38) + 1:02d}"
            line = f"WARN auth FAILED_LOGIN user={user} ip=203.0.113.{(n * 7) % 250 + 1} reason=bad_password"
        elif app == "api-gateway" and pick in (SPIKE_PICKS if n >= SPIKE_FROM else (9, 15)):
            code = 401 if pick != 15 else 403
            line = (
                f"INFO access method=POST path=/v1/orders status={code} client=198.51.100.{(n * 3) % 250 + 1} "
                f"latency_ms={(seed[n % 32] % 40) + 2}"
            )
        elif app == "api-gateway":
            line = f"INFO access method=GET path=/v1/positions status=200 latency_ms={(seed[n % 32] % 20) + 1}"
        else:
            line = f"INFO {app} heartbeat seq={n} queue_depth={seed[n % 32] % 9}"
        out.append((moment, line))
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
