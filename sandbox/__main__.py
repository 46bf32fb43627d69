"""``python -m sandbox``: the simulated GrandModel platform on this machine.

python -m sandbox up [--auto-ports] [--rows N]   start everything; Ctrl-C stops it
python -m sandbox status                         what is running, where
python -m sandbox connections                    AIRFLOW_CONN_* exports for it (contains secrets)
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from sandbox.launcher import Sandbox, default_ports_in_use, read_settings
from sandbox.platform_db import DEFAULT_ROWS

DEFAULT_STATE_DIR = Path(".run/sandbox")


def describe(settings: dict) -> str:
    pg = settings["postgres"]
    rows = pg["seeded_rows"]
    lines = [
        "TradeOps sandbox is up:",
        f"  PostgreSQL     {pg['host']}:{pg['port']}  ({'embedded' if pg['embedded'] else 'external'}; "
        f"databases {pg['platform_database']}{', airflow' if pg['airflow_dsn'] else ''}; "
        f"audit_log {rows['audit_log']:,} rows, "
        f"seeded in {rows['seconds']}s)",
        f"  Redis          {settings['redis']['url'].split('@')[-1]}",
        f"  Platform API   {settings['platform_api']['url']}/v1/system/status",
        f"  Alertmanager   {settings['alertmanager']['url']}/api/v2/alerts",
        f"  Slack          {settings['slack']['api_url']}  (messages: {settings['slack']['url']}/_sandbox/messages)",
    ]
    if "kubernetes" in settings:
        k8s = settings["kubernetes"]
        lines.append(f"  Kubernetes     {k8s['url']}  (contexts: {', '.join(k8s['tokens'])})")
        lines.append(f"                 export KUBECONFIG={k8s['kubeconfig']}; kubectl get deployments")
    lines.append(f"  Settings and secrets (mode 0600): {Path(settings['state_dir']) / 'settings.json'}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the sandbox in the foreground")
    up.add_argument("--auto-ports", action="store_true", help="pick free ports instead of the fixed defaults")
    up.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="audit_log rows to seed (size knob)")
    up.add_argument("--config", type=Path, default=None, help="TradeOps config (default: $TRADEOPS_CONFIG)")
    up.add_argument("--host", default="127.0.0.1", help="address the HTTP services bind to")
    up.add_argument("--advertise-host", default=None, help="host name clients use (default: --host)")
    up.add_argument(
        "--kubernetes-anonymous-admin",
        action="store_true",
        help="requests without a token act as cluster admin (demo convenience; off by default)",
    )
    up.add_argument(
        "--airflow-database",
        default="airflow",
        help="also create this (empty) database for Airflow's metadata; '' for none",
    )
    up.add_argument(
        "--connections-file",
        type=Path,
        default=None,
        help="also write the Airflow connections as a LocalFilesystemBackend JSON file",
    )
    commands.add_parser("status", help="describe the running sandbox")
    commands.add_parser("connections", help="print AIRFLOW_CONN_* exports for the running sandbox")
    args = parser.parse_args(argv)

    if args.command == "up":
        from sandbox.connections import write_connections_file
        from tradeops.config import load_config

        if not args.auto_ports:
            taken = default_ports_in_use(args.host)
            if taken:
                name, port = next(iter(taken.items()))
                print(
                    f"sandbox: port {port} ({name}) is already in use by another program; stop it, or start with "
                    "--auto-ports to use free ports (`python -m sandbox up --auto-ports`)",
                    file=sys.stderr,
                )
                return 2
        config = load_config(args.config)
        sandbox = Sandbox(
            args.state_dir,
            config=config,
            auto_ports=args.auto_ports,
            rows=args.rows,
            airflow_database=args.airflow_database,
            bind_host=args.host,
            anonymous_admin=args.kubernetes_anonymous_admin,
            advertise_host=args.advertise_host or args.host,
        )

        def ready(settings: dict) -> None:
            if args.connections_file:
                write_connections_file(settings, config, args.connections_file)
            print(describe(settings), flush=True)

        sandbox.run(on_ready=ready)
        return 0

    settings = read_settings(args.state_dir)
    if args.command == "status":
        print(describe(settings))
    else:
        from sandbox.connections import airflow_connection_env
        from tradeops.config import load_config

        for name, value in airflow_connection_env(settings, load_config()).items():
            print(f"export {name}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
