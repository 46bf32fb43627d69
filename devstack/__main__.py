"""``python -m devstack demo|up``: the sandbox plus real Airflow on this machine.

demo   start everything, trigger every DAG, run the escalation drill, print a summary, stop; exit 0 when
       everything went as planned (config: tradeops.demo.yaml, escalation in seconds)
up     start everything and keep it running (Airflow UI on http://127.0.0.1:8080) until Ctrl-C
       (config: tradeops.yaml, or --config)

--celery runs either on the CeleryExecutor (`make up-celery`): two Celery workers as processes, the sandbox's
Redis as broker and its PostgreSQL as result backend.

One stack per run directory: a second `demo` or `up` there stops at once and names the one running. When 8080 or
one of the sandbox's fixed ports is taken, every port becomes a free one, printed at start.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from devstack.airflow import Ports
from devstack.demo import DEMO_PLAN, run_drill, run_plan, summary
from devstack.runlock import RunLock, StackBusy
from devstack.stack import DEMO_CONFIG, LocalStack
from sandbox.__main__ import describe
from sandbox.launcher import default_ports_in_use, port_is_free
from sandbox.platform_db import DEFAULT_ROWS

RUN_DIR = Path(".run")


def _stop_on_sigterm() -> None:
    """SIGTERM behaves like Ctrl-C, so `kill` of the launcher stops the whole stack cleanly."""
    signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))


def default_ports_taken() -> dict[str, int]:
    """The fixed ports `make up` and `make demo` would use that another program holds, by what they are for."""
    taken = {f"sandbox {name}": port for name, port in default_ports_in_use().items()}
    if not port_is_free(Ports().api):
        taken["Airflow UI"] = Ports().api
    return taken


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["demo", "up"])
    parser.add_argument("--run-dir", type=Path, default=RUN_DIR)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="audit_log rows in the sandbox database")
    parser.add_argument("--auto-ports", action="store_true", help="free ports instead of 8080 and the defaults")
    parser.add_argument("--config", type=Path, help="TradeOps config file (default: see above)")
    parser.add_argument(
        "--celery",
        action="store_true",
        help="the CeleryExecutor with two workers (queues default+kubernetes, default+database), not LocalExecutor",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="DAG_ID",
        choices=[run.dag_id for run in DEMO_PLAN],
        help="demo: run only this DAG of the plan (repeatable) and skip the escalation drill",
    )
    args = parser.parse_args(argv)
    _stop_on_sigterm()
    try:
        with RunLock(args.run_dir, args.command) as lock:
            return _run(args, lock)
    except StackBusy as busy:
        print(f"make {args.command}: {busy}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopped.")
        return 0
    except (RuntimeError, TimeoutError, OSError) as failed:
        print(f"make {args.command} failed: {str(failed).splitlines()[0]}", file=sys.stderr)
        print(f"  logs: {args.run_dir / 'sandbox.log'}, {args.run_dir / 'airflow' / 'logs'}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, lock: RunLock) -> int:
    auto_ports = args.auto_ports
    if not auto_ports and (taken := default_ports_taken()):
        name, port = next(iter(taken.items()))
        print(f"Port {port} ({name}) is in use by another program: using free ports instead (printed below).")
        auto_ports = True
    config = args.config or (DEMO_CONFIG if args.command == "demo" else None)
    stack = LocalStack(
        args.run_dir,
        auto_ports=auto_ports,
        rows=args.rows,
        config_path=config,
        on_child_started=lock.add_child,
        sample_memory=args.command == "demo",  # only the demo's summary reports it
        celery=args.celery,
    )
    with stack:
        if args.command == "demo":
            plan = [run for run in DEMO_PLAN if run.dag_id in args.only] if args.only else DEMO_PLAN
            outcomes = run_plan(stack, plan)
            drill = None if args.only else run_drill(stack)
            print()
            print(summary(stack, outcomes, drill))
            print()
            ok = all(o.as_expected for o in outcomes) and (drill is None or drill.as_expected)
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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
