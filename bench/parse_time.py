"""DAG parse-time benchmark: what each DAG file costs the dag-processor beyond ``import airflow.sdk``.

Each measurement is a fresh interpreter (as the dag-processor's parsing child is): it times ``import airflow.sdk``
(the fixed cost every DAG file pays), then the execution of one DAG file. Medians over --runs.
Target: every DAG file parses in under 0.2 s beyond the fixed cost.

    python bench/parse_time.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 0.2
PROBE = r"""
import importlib.util, json, sys, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_file", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
t2 = time.perf_counter()
print(json.dumps({"sdk": t1 - t0, "dag": t2 - t1}))
"""


def measure(path: Path, runs: int) -> tuple[list[float], list[float]]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    sdk, dag = [], []
    for _ in range(runs):
        out = (
            subprocess.run(
                [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, env=env, check=True
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        sample = json.loads(out)
        sdk.append(sample["sdk"])
        dag.append(sample["dag"])
    return sdk, dag


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    files = sorted((REPO / "dags").glob("*.py"))
    rows, fixed = [], []
    for path in files:
        sdk, dag = measure(path, args.runs)
        fixed += sdk
        rows.append((path.name, statistics.median(dag), max(dag)))
    print(
        f"Fixed cost of `import airflow.sdk`: median {statistics.median(fixed):.3f} s "
        f"(min {min(fixed):.3f}, max {max(fixed):.3f}; {len(fixed)} fresh interpreters)\n"
    )
    print(f"{'DAG file':<36} {'median':>8} {'max':>8}   target < {TARGET_S} s beyond the fixed cost")
    ok = True
    for name, median, worst in rows:
        verdict = "ok" if median < TARGET_S else "OVER TARGET"
        ok &= median < TARGET_S
        print(f"{name:<36} {median:>7.3f}s {worst:>7.3f}s   {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
