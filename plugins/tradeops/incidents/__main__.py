"""``python -m tradeops.incidents migrate``: apply the migrations of TradeOps' state database (``include/sql``), the
database of the config's ``connections.state_db``. A deploy step, run once per release before the components start
(docker-compose's init service; the sandbox applies them when it creates the database); safe to run again and from
several places at once."""

from __future__ import annotations

import argparse
import sys

from tradeops.config import load_config
from tradeops.connections import postgres_dsn
from tradeops.incidents import store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tradeops.incidents", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply the state database's migrations not applied yet")
    parser.parse_args(argv)
    state_db = load_config().connections.state_db
    applied = store.migrate(postgres_dsn(state_db))
    print(f"{state_db}: applied {', '.join(applied)}" if applied else f"{state_db}: up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
