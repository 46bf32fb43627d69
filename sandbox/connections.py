"""Airflow Connections for a running sandbox, generated from its settings (never written by hand).

Each connection is the JSON form Airflow reads from ``AIRFLOW_CONN_<ID>`` environment variables; the ids come
from the ``connections`` section of the TradeOps config, so production only has to define the same ids.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tradeops.config import TradeOpsConfig


def _http(url: str, **extra) -> dict:
    parts = urlsplit(url)
    return {"conn_type": "http", "host": parts.hostname, "port": parts.port, "schema": parts.scheme, **extra}


def _postgres(dsn: str) -> dict:
    parts = urlsplit(dsn)
    return {
        "conn_type": "postgres",
        "host": parts.hostname,
        "port": parts.port,
        "login": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "schema": parts.path.lstrip("/"),
    }


def _redis(url: str) -> dict:
    parts = urlsplit(url)
    return {
        "conn_type": "redis",
        "host": parts.hostname,
        "port": parts.port,
        "password": unquote(parts.password or ""),
        "extra": {"db": int(parts.path.lstrip("/") or 0)},
    }


def airflow_connections(settings: dict, config: TradeOpsConfig) -> dict[str, dict]:
    ids = config.connections
    secrets = settings["secrets"]
    connections = {
        ids.state_db: _postgres(settings["postgres"]["state_dsn"]),
        ids.slack_signing: {"conn_type": "generic", "password": secrets["slack_signing_secret"]},
        ids.slack_webhook: {"conn_type": "slackwebhook", "password": settings["slack"]["webhook_url"]},
        ids.platform_api: _http(settings["platform_api"]["url"], password=secrets["platform_api_token"]),
        ids.alertmanager: _http(settings["alertmanager"]["url"]),
        ids.alertmanager_webhook: {
            "conn_type": "generic",
            "login": "alertmanager",
            "password": secrets["alertmanager_webhook_token"],
        },
        ids.platform_db: _postgres(settings["postgres"]["platform_dsn"]),
        ids.redis: _redis(settings["redis"]["url"]),
        ids.slack_api: {
            "conn_type": "slack",
            "password": secrets["slack_bot_token"],
            "extra": {"base_url": settings["slack"]["api_url"], "timeout": 10},
        },
        ids.kubernetes: {
            "conn_type": "kubernetes",
            "extra": {
                "kube_config": json.loads(settings["kubernetes"]["kubeconfig_json"]),
                "cluster_context": "tradeops",
                "namespace": config.kubernetes.namespaces[0].name,
            },
        },
    }
    return connections


def airflow_connection_env(settings: dict, config: TradeOpsConfig) -> dict[str, str]:
    """``AIRFLOW_CONN_<ID>`` environment variables for every sandbox connection."""
    return {
        f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)
        for conn_id, conn in airflow_connections(settings, config).items()
    }


@contextmanager
def connections_in_environment(settings: dict, config: TradeOpsConfig) -> Iterator[dict[str, str]]:
    """The sandbox's connections as ``AIRFLOW_CONN_*`` in this process while inside (hooks resolve them as tasks
    do); the previous values are restored on the way out."""
    env = airflow_connection_env(settings, config)
    previous = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def write_private_json(path: Path, data, **dumps) -> None:
    """Write JSON readable by its owner only (mode 0600 from the start), replacing ``path`` atomically."""
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        json.dump(data, out, indent=2, **dumps)
    tmp.replace(path)


def write_connections_file(settings: dict, config: TradeOpsConfig, path) -> None:
    """The connections as a file for Airflow's ``LocalFilesystemBackend`` (docker-compose shares it by volume)."""
    connections = {}
    for conn_id, conn in airflow_connections(settings, config).items():
        conn = dict(conn)
        if "extra" in conn:
            conn["extra_dejson"] = conn.pop("extra")
        connections[conn_id] = conn
    write_private_json(Path(path), connections)
