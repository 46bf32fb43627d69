"""``python -m tradeops.config [PATH]``: validate a TradeOps config file; exit 1 with the reasons if it is bad."""

import sys

from tradeops.config import default_config_path, load_config
from tradeops.exceptions import ConfigError


def main(argv: list[str]) -> int:
    path = argv[0] if argv else default_config_path()
    try:
        config = load_config(path)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 1
    k8s = config.kubernetes
    print(
        f"{path}: valid ({len(k8s.deployments)} deployments in {len(k8s.namespaces)} namespaces, "
        f"{len(config.database.tables)} tables, {len(config.schedules)} schedules, "
        f"{len(config.escalation.levels)} escalation levels)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
