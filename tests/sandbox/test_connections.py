"""Airflow Connections for the sandbox are generated from its settings, in both forms Airflow reads."""

from __future__ import annotations

import json

from sandbox.connections import airflow_connection_env, airflow_connections, write_connections_file


def test_one_connection_per_configured_id(sandbox_settings, config):
    connections = airflow_connections(sandbox_settings, config)
    ids = config.connections
    assert set(connections) == {
        ids.state_db,
        ids.slack_signing,
        ids.slack_webhook,
        ids.platform_api,
        ids.alertmanager,
        ids.alertmanager_webhook,
        ids.platform_db,
        ids.redis,
        ids.slack_api,
        ids.kubernetes,
    }
    assert connections[ids.state_db]["schema"] == "tradeops"
    assert connections[ids.platform_db]["conn_type"] == "postgres"
    assert connections[ids.slack_api]["extra"]["base_url"] == sandbox_settings["slack"]["api_url"]
    env = airflow_connection_env(sandbox_settings, config)
    assert set(env) == {f"AIRFLOW_CONN_{conn_id.upper()}" for conn_id in connections}


def test_connections_file_is_read_by_airflows_local_filesystem_backend(sandbox_settings, config, tmp_path):
    from airflow.secrets.local_filesystem import LocalFilesystemBackend

    path = tmp_path / "connections.json"
    write_connections_file(sandbox_settings, config, path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    backend = LocalFilesystemBackend(connections_file_path=str(path))
    slack = backend.get_connection(config.connections.slack_api)
    assert slack.password == sandbox_settings["secrets"]["slack_bot_token"]
    assert slack.extra_dejson["base_url"] == sandbox_settings["slack"]["api_url"]
    db = backend.get_connection(config.connections.platform_db)
    assert (db.login, db.schema) == ("tradeops", "grandmodel")
    assert json.loads(path.read_text())[config.connections.redis]["extra_dejson"] == {"db": 0}
