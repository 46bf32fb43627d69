"""``python -m devstack demo|up``: the sandbox plus real Airflow on this machine.

demo   start everything, trigger every DAG, run the escalation drill, print a summary, stop; exit 0 when
       everything went as planned (config: tradeops.demo.yaml, escalation in seconds)
up     start everything and keep it running (Airflow UI on http://127.0.0.1:8080) until Ctrl-C
       (config: tradeops.yaml, or --config)
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from devstack.demo import run_drill, run_plan, summary
from devstack.stack import DEMO_CONFIG, LocalStack
from sandbox.__main__ import describe
from sandbox.platform_db import DEFAULT_ROWS

RUN_DIR = Path(".run")


def _stop_on_sigterm() -> None:
    """SIGTERM behaves like Ctrl-C, so `kill` of the launcher stops the whole stack cleanly."""
    signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["demo", "up"])
    parser.add_argument("--run-dir", type=Path, default=RUN_DIR)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="audit_log rows in the sandbox database")
    parser.add_argument("--auto-ports", action="store_true", help="free ports instead of 8080 and the defaults")
    parser.add_argument("--config", type=Path, help="TradeOps config file (default: see above)")
    args = parser.parse_args(argv)
    _stop_on_sigterm()

    config = args.config or (DEMO_CONFIG if args.command == "demo" else None)
    stack = LocalStack(args.run_dir, auto_ports=args.auto_ports, rows=args.rows, config_path=config)
    try:
        with stack:
            if args.command == "demo":
                outcomes = run_plan(stack)
                drill = run_drill(stack)
                print()
                print(summary(stack, outcomes, drill))
                print()
                ok = all(o.as_expected for o in outcomes) and drill.as_expected
                print(
                    "Demo OK: every run ended as planned."
                    if ok
                    else f"Demo FAILED: see the runs above and the logs in {stack.run_dir / 'airflow' / 'logs'}."
                )
                return 0 if ok else 1
            print()
            print(describe(stack.settings))
            print(f"  Airflow UI     {stack.airflow.url}  (logs: {stack.run_dir / 'airflow' / 'logs'})")
            print("\nEverything is running. Press Ctrl-C to stop.", flush=True)
            threading.Event().wait()
    except KeyboardInterrupt:
        print("\nStopped.")
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
