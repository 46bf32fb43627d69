"""Trading-calendar benchmark: what the scheduler pays for ExchangeSessionTimetable and the market sensor.

- first use in a process: building the XNYS session table from exchange_calendars (pandas) vs reading the JSON cache
  an earlier process wrote;
- ``next_dagrun_info`` once warm (the scheduler calls it for every DAG, every loop): median and p99 per call,
  and proof that the calendar is not rebuilt per call;
- the parse cost the timetable adds to a DAG file (constructing it; no calendar is built at parse time).

    python bench/market_calendar.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

FIRST_USE = r"""
import json, sys, time
t0 = time.perf_counter()
from tradeops.calendar.sessions import sessions_for
table = sessions_for("XNYS")
print(json.dumps({"seconds": time.perf_counter() - t0, "sessions": len(table.sessions)}))
"""

CONSTRUCT = r"""
import json, time
import airflow.sdk
from airflow.timetables.base import Timetable
t0 = time.perf_counter()
from tradeops.calendar.timetable import ExchangeSessionTimetable
from tradeops.calendar.deadlines import ExchangeSessionDeadline
timetable = ExchangeSessionTimetable({"anchor": "open", "offset": "-90m"})
deadline = ExchangeSessionDeadline({"anchor": "open", "offset": "-10m"})
import sys
print(json.dumps({"seconds": time.perf_counter() - t0, "exchange_calendars_loaded": "exchange_calendars" in sys.modules,
                  "pandas_loaded": "pandas" in sys.modules}))
"""


def run(code: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "PYTHONPATH": str(REPO / "plugins"), "TRADEOPS_CACHE_DIR": cache}
        cold = [run(FIRST_USE, env) for _ in range(1)]
        warm = [run(FIRST_USE, env) for _ in range(args.runs)]
        construct = [run(CONSTRUCT, env) for _ in range(args.runs)]

    import pendulum
    from airflow.timetables.base import TimeRestriction

    from tradeops.calendar.sessions import _table
    from tradeops.calendar.timetable import ExchangeSessionTimetable

    timetable = ExchangeSessionTimetable({"anchor": "open", "offset": "-90m"})
    restriction = TimeRestriction(earliest=pendulum.datetime(2026, 1, 1), latest=None, catchup=False)
    timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    builds_before = _table.cache_info().misses
    samples = []
    for _ in range(args.calls):
        started = time.perf_counter_ns()
        timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
        samples.append(time.perf_counter_ns() - started)
    samples.sort()
    builds = _table.cache_info().misses - builds_before

    print(
        "ExchangeSessionTimetable / market calendar (XNYS, 2015 through five years ahead, "
        f"{cold[0]['sessions']} sessions)\n"
    )
    print(f"{'measure':<58} {'value':>14}")
    print(f"{'first use, built from exchange_calendars (cold cache)':<58} {cold[0]['seconds'] * 1000:>11.0f} ms")
    print(
        f"{'first use, read from the JSON cache (median)':<58} "
        f"{statistics.median(w['seconds'] for w in warm) * 1000:>11.1f} ms"
    )
    print(f"{'next_dagrun_info, warm: median':<58} {samples[len(samples) // 2] / 1000:>11.1f} µs")
    print(f"{'next_dagrun_info, warm: p99':<58} {samples[int(len(samples) * 0.99)] / 1000:>11.1f} µs")
    print(f"{'calendar builds during ' + str(args.calls) + ' calls':<58} {builds:>14}")
    print(
        f"{'parse cost: import + construct timetable and deadline (median)':<58} "
        f"{statistics.median(c['seconds'] for c in construct) * 1000:>11.1f} ms"
    )
    print(
        f"{'exchange_calendars / pandas imported at parse time':<58} "
        f"{str(construct[0]['exchange_calendars_loaded']) + ' / ' + str(construct[0]['pandas_loaded']):>14}"
    )
    return 0 if builds == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
