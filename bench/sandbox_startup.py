"""Sandbox start-up benchmark: from `python -m sandbox up` to every service answering (settings.json written).

Runs the real command several times (fresh interpreter each time) and reports the median and the parts the sandbox
records: datastores (PostgreSQL + Redis + the platform database) and the Kubernetes API (seed, TLS, controllers).
The first run of a day seeds the platform database and caches the cluster; later runs copy the cached cluster.

    python bench/sandbox_startup.py [--runs 5] [--cold]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 2.0


def start_once(cache: Path) -> dict:
    state = REPO / ".run" / "bench-startup"
    shutil.rmtree(state, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'plugins'}:{REPO}", "TRADEOPS_CACHE_DIR": str(cache)}
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--state-dir", str(state), "up", "--auto-ports"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    settings_path = state / "settings.json"
    while not settings_path.exists():
        if process.poll() is not None:
            raise RuntimeError(process.stderr.read().decode()[-2000:])
        time.sleep(0.005)
    total = time.monotonic() - started
    settings = json.loads(settings_path.read_text())
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    return {
        "total": total,
        "datastores": settings["datastores_ready_s"],
        "kubernetes": settings["kubernetes"]["ready_s"],
        "seeded": settings["postgres"]["seeded_rows"]["seconds"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        cold = start_once(Path(cache))
        warm = [start_once(Path(cache)) for _ in range(args.runs)]
    median = {key: statistics.median(run[key] for run in warm) for key in ("total", "datastores", "kubernetes")}
    print(f"`python -m sandbox up` until every service answers ({args.runs} warm runs, median)\n")
    print(f"{'':<34} {'first of the day':>17} {'warm (median)':>14}")
    print(f"{'total':<34} {cold['total']:>16.2f}s {median['total']:>13.2f}s   target < {TARGET_S} s")
    print(f"{'  datastores (PG, Redis, seed)':<34} {cold['datastores']:>16.2f}s {median['datastores']:>13.2f}s")
    print(f"{'  Kubernetes API (seed, TLS)':<34} {cold['kubernetes']:>16.2f}s {median['kubernetes']:>13.2f}s")
    return 0 if median["total"] < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
