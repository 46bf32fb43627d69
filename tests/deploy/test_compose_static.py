"""docker-compose.yaml, Dockerfile and .env.example checked without starting anything: the file is valid compose,
the official Airflow 3.3 layout is all there with healthchecks, the versions are the lock's, everything the code reads
(connection ids, environment variables) is provided, and no secret value is committed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from sandbox.connections import airflow_connections
from tradeops.config import load_config

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yaml"
OFFICIAL_SERVICES = {
    "postgres",
    "redis",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
}
LONG_RUNNING = OFFICIAL_SERVICES - {"airflow-init"} | {"sandbox"}
AIRFLOW_SERVICES = {name for name in OFFICIAL_SERVICES if name.startswith("airflow-")} | {"sandbox"}
# Read by the code but deliberately not set by the compose stack, with why.
OPTIONAL_ENV = {
    "TRADEOPS_WORKER_NAME": "one worker per container: their hostnames differ already (tradeops.workers)",
    "AIRFLOW_HOME": "set by the image (/opt/airflow)",
}


def example_env() -> dict[str, str]:
    """.env.example with its placeholders filled in, as a user's .env would be."""
    values = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = re.sub(r"[<>]", "", value) or "x"
    return values


@pytest.fixture(scope="module")
def compose() -> dict:
    """The compose file as docker-compose resolves it (anchors merged, variables substituted); plain YAML without
    docker-compose on the machine."""
    env = {**os.environ, **example_env()}
    if shutil.which("docker-compose") is None:
        return yaml.safe_load(interpolate(COMPOSE.read_text(), env))
    done = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable forms: ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` (a missing VAR fails)."""

    def value(match: re.Match) -> str:
        name, form, rest = match["name"], match["form"], match["rest"]
        if env.get(name):
            return env[name]
        assert form != ":?", f"{name} is required: {rest}"
        return rest if form == ":-" else ""

    return re.sub(r"\$\{(?P<name>[A-Z0-9_]+)(?:(?P<form>:[-?])(?P<rest>[^}]*))?\}", value, text)


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {name: str(value) for name, value in env.items()}


def locked(package: str) -> str:
    [version] = re.findall(rf"^{re.escape(package)}==(\S+)$", (REPO / "requirements.txt").read_text(), re.M)
    return version


def test_every_service_of_the_official_layout_is_there_with_a_healthcheck(compose):
    services = compose["services"]
    assert set(services) >= OFFICIAL_SERVICES
    for name in LONG_RUNNING:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in AIRFLOW_SERVICES - {"airflow-init", "sandbox"}:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == depends["redis"]["condition"] == "service_healthy", name
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
    assert services["airflow-init"]["depends_on"]["sandbox"]["condition"] == "service_healthy"


def test_the_worker_serves_every_queue_the_dag_kit_assigns(compose):
    from tradeops.dagkit import DEFAULT_QUEUE, QUEUE_BY_DOMAIN

    command = compose["services"]["airflow-worker"]["command"]
    command = command if isinstance(command, str) else " ".join(command)
    queues = set(re.search(r"--queues (\S+)", command).group(1).split(","))
    assert queues == {DEFAULT_QUEUE, *QUEUE_BY_DOMAIN.values()}


def test_the_stack_runs_celery_on_postgres_and_redis_with_a_real_auth_manager(compose):
    env = environment(compose["services"]["airflow-scheduler"])
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("SimpleAuthManager")
    assert env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "false").lower() == "false"
    roles = dict(user.split(":") for user in env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(","))
    assert "admin" in roles.values() and "op" in roles.values()
    volumes = {
        str(v).split(":")[1] if isinstance(v, str) else v["target"]
        for v in compose["services"]["airflow-worker"]["volumes"]
    }
    assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include", "/opt/airflow/backups"} <= volumes


def test_versions_are_the_locks():
    airflow = locked("apache-airflow")
    dockerfile = (REPO / "Dockerfile").read_text()
    [base] = re.findall(r"^ARG AIRFLOW_BASE_IMAGE=(\S+)$", dockerfile, re.M)
    assert base == f"apache/airflow:{airflow}-python3.11"
    raw = COMPOSE.read_text()
    assert f"apache/airflow:{airflow}-python3.11" in raw
    assert re.search(rf"image: \$\{{TRADEOPS_IMAGE:-tradeops-airflow:{re.escape(airflow)}\}}", raw)
    assert f"tradeops-airflow:{airflow}" in (REPO / "devstack/docker/build.sh").read_text()
    # pg_dump of the server's major version: the Dockerfile's PG_MAJOR is the compose postgres image's tag.
    [pg_major] = re.findall(r"^ARG PG_MAJOR=(\d+)$", dockerfile, re.M)
    assert f"${{POSTGRES_IMAGE:-postgres:{pg_major}}}" in raw
    assert f"PG_MAJOR={pg_major}" in (REPO / "devstack/docker/build.sh").read_text()


def fake_sandbox_settings() -> dict:
    """The shape of a running sandbox's settings, enough to list the connections it writes."""
    pg = "postgresql://u:p@postgres:5432/db"
    url = {"url": "http://sandbox:1"}
    return {
        "postgres": {"state_dsn": pg, "platform_dsn": pg},
        "redis": {"url": "redis://redis:6379/1"},
        "secrets": {
            "slack_signing_secret": "s",
            "platform_api_token": "t",
            "slack_bot_token": "b",
            "alertmanager_webhook_token": "w",
        },
        "slack": {"webhook_url": "http://sandbox:1/hook", "api_url": "http://sandbox:1/api/"},
        "platform_api": url,
        "alertmanager": url,
        "kubernetes": {"kubeconfig_json": "{}"},
    }


def test_every_connection_id_the_code_reads_is_provided(compose):
    config = load_config(REPO / "include/config/tradeops.yaml")
    wanted = set(config.connections.model_dump().values())
    from_sandbox = set(airflow_connections(fake_sandbox_settings(), config))
    for name in AIRFLOW_SERVICES - {"sandbox"}:
        env = environment(compose["services"][name])
        from_env = {key.removeprefix("AIRFLOW_CONN_").lower() for key in env if key.startswith("AIRFLOW_CONN_")}
        assert "connections.json" in env["AIRFLOW__SECRETS__BACKEND_KWARGS"], name
        assert wanted <= from_sandbox | from_env, f"{name} lacks {wanted - from_sandbox - from_env}"


def test_every_environment_variable_the_code_reads_is_provided(compose):
    code = "\n".join(p.read_text() for p in (REPO / "plugins/tradeops").rglob("*.py"))
    read = set(re.findall(r'"((?:TRADEOPS|AIRFLOW)_[A-Z_]+)"', code))
    assert read, "nothing found: the scan is broken"
    image = set(re.findall(r"^ENV (\w+)=", (REPO / "Dockerfile").read_text(), re.M))
    for name in AIRFLOW_SERVICES - {"sandbox"}:
        missing = read - set(environment(compose["services"][name])) - image - set(OPTIONAL_ENV)
        assert not missing, f"{name} does not set {missing}"


def test_no_secret_value_is_committed():
    for line in (REPO / ".env.example").read_text().splitlines():
        name = line.partition("=")[0]
        if re.search(r"PASSWORD|SECRET|KEY|TOKEN", name) and not line.startswith("#"):
            assert re.fullmatch(r"\w+=<[\w-]+>", line), f".env.example has a value for {name}: use a <placeholder>"
    raw = yaml.safe_load(COMPOSE.read_text())
    for service_name, service in raw["services"].items():
        for key, value in environment(service).items():
            if re.search(r"PASSWORD|SECRET_KEY|JWT_SECRET|FERNET|TOKEN", key) and "FILE" not in key:
                assert value.startswith("${"), f"{service_name}: {key} is not taken from the env file"
        for key, value in environment(service).items():
            assert not re.search(r"://[^:/@]+:(?!\$\{)[^@]+@", value), f"{service_name}: {key} has a password"
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO)
    assert ignored.returncode == 0, ".env (the real secrets) must be git-ignored"
