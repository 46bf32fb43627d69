from __future__ import annotations

import copy
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from tradeops.config import default_config_path, format_duration, load_config, parse_duration
from tradeops.config.model import OPT_OUT
from tradeops.exceptions import ConfigError

REPO = Path(__file__).resolve().parents[3]
GOOD = yaml.safe_load(default_config_path().read_text())


def write(tmp_path: Path, data: dict | str, name: str = "tradeops.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def invalid(tmp_path: Path, mutate) -> str:
    data = copy.deepcopy(GOOD)
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message, "the message must name the file"
    return message


def test_the_shipped_config_is_valid():
    config = load_config()
    assert config.platform.exchange == "XNYS"
    names = [d.name for d in config.kubernetes.deployments]
    assert {
        "strategic-marl",
        "tactical-marl",
        "risk-management",
        "execution-engine",
        "data-handler",
        "api-gateway",
        "auth-service",
    } <= set(names)
    assert config.kubernetes.deployment("tactical-marl").replicas.market_hours == 3
    assert config.schedules["daily_health_check"].offset == timedelta(minutes=-90)
    assert [level.level for level in config.escalation.levels] == [1, 2, 3, 4]
    assert config.escalation.severities["P1"].escalate_after == timedelta(minutes=15)


def test_missing_field(tmp_path):
    message = invalid(tmp_path, lambda d: d["kubernetes"]["deployments"][1].pop("replicas"))
    assert "kubernetes.deployments[1].replicas: Field required" in message


def test_wrong_type_names_the_value_and_line(tmp_path):
    def mutate(d):
        d["kubernetes"]["deployments"][2]["replicas"]["market_hours"] = "three"

    message = invalid(tmp_path, mutate)
    assert "kubernetes.deployments[2].replicas.market_hours" in message
    assert "valid integer" in message and "'three'" in message
    line = int(message.split("line ")[1].split(":")[0])
    text = (tmp_path / "tradeops.yaml").read_text().splitlines()
    assert "three" in text[line - 1]


def test_unknown_deployment_referenced(tmp_path):
    message = invalid(
        tmp_path, lambda d: d["kubernetes"].__setitem__("trading_deployments", ["strategic-marl", "alpha-bot"])
    )
    assert "kubernetes.trading_deployments[1]: unknown deployment 'alpha-bot' referenced" in message


def test_negative_retention(tmp_path):
    message = invalid(tmp_path, lambda d: d["database"]["tables"][0].__setitem__("retention_days", -90))
    assert "database.tables[0].retention_days: Input should be greater than 0 (got -90)" in message


def test_duplicate_deployment_and_table_names(tmp_path):
    def mutate(d):
        d["kubernetes"]["deployments"].append(copy.deepcopy(d["kubernetes"]["deployments"][0]))
        d["database"]["tables"].append({"name": "trades"})

    message = invalid(tmp_path, mutate)
    assert "duplicate deployment 'grandmodel/data-handler'" in message
    assert "duplicate table 'trades'" in message
    assert "(2 problems)" in message


def test_duplicate_yaml_keys_are_refused(tmp_path):
    text = default_config_path().read_text().replace("  exchange: XNYS\n", "  exchange: XNYS\n  exchange: XNAS\n", 1)
    with pytest.raises(ConfigError, match="duplicate key 'exchange'"):
        load_config(write(tmp_path, text))


def test_unknown_field_is_a_typo_not_a_default(tmp_path):
    message = invalid(tmp_path, lambda d: d["thresholds"].__setitem__("memory_warn_pc", 50))
    assert "thresholds.memory_warn_pc: unknown field" in message


def test_undeclared_namespace_and_image_outside_the_allowed_registry(tmp_path):
    def mutate(d):
        d["kubernetes"]["deployments"][0]["namespace"] = "default"
        d["kubernetes"]["deployments"][1]["image"] = "docker.io/grandmodel/strategic-marl:latest"

    message = invalid(tmp_path, mutate)
    assert "kubernetes.deployments[0].namespace: namespace 'default' is not declared" in message
    assert (
        "kubernetes.deployments[1].image: image 'docker.io/grandmodel/strategic-marl:latest' does not match" in message
    )


def test_inverted_ranges_and_escalation_gaps(tmp_path):
    def mutate(d):
        d["account"]["balance_min"] = d["account"]["balance_max"] + 1
        d["escalation"]["levels"][3]["level"] = 7
        d["escalation"]["severities"]["P2"]["escalate_after"] = "5m"

    message = invalid(tmp_path, mutate)
    assert "account.balance_min: must be lower than account.balance_max" in message
    assert "escalation.levels: levels must be numbered 1..N without gaps" in message
    assert "escalation.severities.P2.escalate_after: must not be shorter than initial_response" in message


def test_market_anchor_validation(tmp_path):
    def mutate(d):
        d["schedules"]["daily_health_check"] = {"anchor": "noon", "offset": "-90m"}
        d["schedules"]["pre_market_startp"] = {"anchor": "open", "offset": "-60m"}
        d["schedules"]["post_market_shutdown"] = {"anchor": "close", "offset": "90 minutes"}
        d["schedules"]["weekly_maintenance"] = {"anchor": "clock", "at": "26:00", "days": ["sunday"]}
        d["schedules"]["daily_db_maintenance"] = {"anchor": "clock", "at": "02:00", "offset": "5m"}
        d["schedules"]["daily_ops_report"] = {"anchor": "close", "offset": "25h"}

    message = invalid(tmp_path, mutate)
    assert (
        "schedules.daily_health_check.anchor: Input tag 'noon' found using 'anchor' does not match any of the "
        "expected tags: 'open', 'close', 'clock'" in message
    )
    assert "schedules.pre_market_startp: Input should be 'daily_health_check'" in message
    assert "schedules.post_market_shutdown.offset: '90 minutes' is not a duration" in message
    assert "schedules.weekly_maintenance.at: String should match pattern" in message
    assert "schedules.weekly_maintenance.days[0]: Input should be 'mon'" in message
    assert "schedules.daily_db_maintenance.offset: unknown field" in message
    assert "schedules.daily_ops_report.offset: an offset from the open or close must be shorter than 24h" in message


def test_deadline_tiers(tmp_path):
    def mutate(d):
        d["deadlines"]["daily_health_check"].append({"name": "late", "by": {"anchor": "open"}, "severity": "P9"})
        d["deadlines"]["monthly_access_review"] = [{"name": "late", "by": {"anchor": "close", "offset": "3h"}}]

    message = invalid(tmp_path, mutate)
    assert "deadlines.daily_health_check[2].severity: Input should be 'P1', 'P2', 'P3', 'P4' or 'security'" in message
    data = copy.deepcopy(GOOD)
    data["deadlines"]["daily_health_check"].append({"name": "late", "by": {"anchor": "open"}})
    data["deadlines"]["monthly_access_review"] = [{"name": "late", "by": {"anchor": "close", "offset": "3h"}}]
    data["schedules"].pop("monthly_access_review")
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, data, "second.yaml"))
    assert "deadlines.daily_health_check[2].name: duplicate deadline tier 'late'" in str(err.value)
    assert "deadlines.monthly_access_review: 'monthly_access_review' has deadlines but no schedule" in str(err.value)


def test_secrets_have_no_place_in_the_config(tmp_path):
    message = invalid(tmp_path, lambda d: d["connections"].__setitem__("slack_token", "xoxb-123"))
    assert "connections.slack_token: unknown field" in message


def test_unreadable_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read it"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "platform: [unclosed\n"))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90m", 5400), ("-60m", -3600), ("1h30m", 5400), ("45s", 45), ("2d", 172800), ("+15m", 900)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


@pytest.mark.parametrize("text", ["90", "1.5h", "m", "10 m", "", "-"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_cli_validates_a_file(tmp_path):
    env = {"PYTHONPATH": str(REPO / "plugins"), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run(
        [sys.executable, "-m", "tradeops.config", str(default_config_path())], capture_output=True, text=True, env=env
    )
    assert ok.returncode == 0, ok.stderr
    assert "valid (8 deployments" in ok.stdout

    data = copy.deepcopy(GOOD)
    data["database"]["tables"][1]["retention_days"] = 0
    bad = subprocess.run(
        [sys.executable, "-m", "tradeops.config", str(write(tmp_path, data))], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 1
    assert "database.tables[1].retention_days" in bad.stderr


def test_loading_is_cached_until_the_file_changes(tmp_path):
    path = write(tmp_path, GOOD)
    first = load_config(path)
    assert load_config(path) is first
    data = copy.deepcopy(GOOD)
    data["platform"]["name"] = "Renamed"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    import os

    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert load_config(path).platform.name == "Renamed"


# --- extends: an overlay over another config (the demo's seconds-scale escalation) ---------------------------------


def test_the_demo_config_is_the_production_one_with_escalation_in_seconds():
    demo = load_config(REPO / "include" / "config" / "tradeops.demo.yaml")
    production = load_config()
    assert demo.escalation.severities["P2"].initial_response == timedelta(seconds=8)
    assert demo.escalation.levels == production.escalation.levels, "mappings merge key by key"
    assert demo.kubernetes == production.kubernetes and demo.deadlines == production.deadlines


def test_extends_with_quotes_and_a_comment(tmp_path):
    write(tmp_path, GOOD, "base.yaml")
    overlay = write(tmp_path, "extends: 'base.yaml'  # shared\nescalation:\n  repeat: 3\n", "overlay.yaml")
    assert load_config(overlay).escalation.repeat == 3


@pytest.mark.parametrize("written", ["'{}'", '"{}"', "{}", "{}  # shared"])
def test_extends_a_path_with_spaces_quoted_or_plain(tmp_path, written):
    folder = tmp_path / "a b"
    folder.mkdir()
    base = write(folder, GOOD, "base config.yaml")
    overlay = write(tmp_path, f"extends: {written.format(base)}\nescalation:\n  repeat: 3\n", "overlay.yaml")
    assert load_config(overlay).escalation.repeat == 3


def test_an_edit_to_the_base_file_is_seen(tmp_path):
    base = write(tmp_path, GOOD, "base.yaml")
    overlay = write(tmp_path, "extends: base.yaml\n", "overlay.yaml")
    assert load_config(overlay).escalation.repeat == GOOD["escalation"]["repeat"]
    write(tmp_path, {**GOOD, "escalation": {**GOOD["escalation"], "repeat": 4}}, "base.yaml")
    os.utime(base, ns=(base.stat().st_atime_ns, base.stat().st_mtime_ns + 10**9))
    assert load_config(overlay).escalation.repeat == 4


def test_an_extends_loop_is_refused(tmp_path):
    loop = write(tmp_path, "extends: loop.yaml  # oops\n", "loop.yaml")
    with pytest.raises(ConfigError, match="loops back to itself"):
        load_config(loop)


def test_an_error_in_the_base_names_the_base_file_the_full_path_and_its_line(tmp_path):
    bad = {**GOOD, "escalation": {**GOOD["escalation"], "repeat": 99}}
    base = write(tmp_path, bad, "base.yaml")
    overlay = write(tmp_path, "extends: base.yaml\nslack:\n  war_room_prefix: war-\n", "overlay.yaml")
    with pytest.raises(ConfigError) as err:
        load_config(overlay)
    line = next(n for n, text in enumerate(base.read_text().splitlines(), 1) if text.strip().startswith("repeat:"))
    assert f"base.yaml line {line}: escalation.repeat: Input should be less than or equal to 10" in str(err.value)


def test_database_care_settings(tmp_path):
    def mutate(data):
        data["database"]["maintenance"]["xid_age_warn"] = 2_000_000_000
        data["database"]["maintenance"]["lock_timeout_ms"] = 0
        data["database"]["backup"]["format"] = "tar"
        data["weekly_maintenance"]["deployments"].append("ghost")

    message = invalid(tmp_path, mutate)
    assert "database.maintenance.lock_timeout_ms" in message
    assert "database.backup.format" in message
    message = invalid(
        tmp_path,
        lambda data: (
            data["database"]["maintenance"].update(xid_age_warn=1_500_000_000),
            data["weekly_maintenance"]["deployments"].append("ghost"),
        ),
    )
    assert "database.maintenance.xid_age_warn" in message and "must be lower than xid_age_fail" in message
    assert "weekly_maintenance.deployments[3]: unknown deployment 'ghost'" in message


def test_check_severities_come_from_incidents_check_severity_only(tmp_path):
    severity = load_config().incidents.check_severity
    assert {
        task: severity[task]
        for task in (
            "db_long_queries",
            "db_blocked_sessions",
            "db_connections",
            "db_wraparound",
            "backup",
            "database_connections",
        )
    } == {
        "db_long_queries": "P2",
        "db_blocked_sessions": "P2",
        "db_connections": "P2",
        "db_wraparound": "P1",
        "backup": "P2",
        "database_connections": "P2",
    }
    message = invalid(tmp_path, lambda d: d["database"]["maintenance"].__setitem__("severities", {"backup": "P1"}))
    assert "database.maintenance.severities: unknown field" in message


def test_database_connection_thresholds_are_one_pair_and_ordered(tmp_path):
    message = invalid(
        tmp_path, lambda d: d["thresholds"].update(db_connections_warn_pct=95, db_connections_fail_pct=90)
    )
    assert "thresholds.db_connections_warn_pct: must be lower than thresholds.db_connections_fail_pct" in message


def test_a_failed_runbook_pages_by_default_at_its_dags_severity(tmp_path):
    policy = load_config().incidents.runbook_failure
    assert OPT_OUT not in policy.dags.values()
    assert policy.severity_for("incident_escalation_engine") == "P1"
    assert policy.severity_for("daily_db_maintenance") == "P3"
    assert policy.severity_for("monthly_access_review") == policy.default_severity == "P2"
    # A file that extends the shipped one opts out a DAG the shipped one gives a severity.
    override = {"extends": str(default_config_path()), "incidents": {"runbook_failure": {"dags": {}}}}
    override["incidents"]["runbook_failure"]["dags"]["daily_db_maintenance"] = "opt_out"
    policy = load_config(write(tmp_path, override)).incidents.runbook_failure
    assert policy.severity_for("daily_db_maintenance") is None
    assert policy.severity_for("incident_escalation_engine") == "P1"


def test_runbook_failure_refuses_a_dag_both_opted_out_and_given_a_severity(tmp_path):
    text = (
        default_config_path()
        .read_text()
        .replace(
            "      daily_db_maintenance: P3", "      daily_db_maintenance: P3\n      daily_db_maintenance: opt_out", 1
        )
    )
    with pytest.raises(ConfigError, match="duplicate key 'daily_db_maintenance'"):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize(
    ("dag_id", "setting", "complaint"),
    [
        ("weekly_maintenace", "P2", "weekly_maintenace"),
        ("db_restore", "opt_out", "db_restore"),  # a manual DAG: the policy is for scheduled runbooks
        ("weekly_maintenance", "P0", "'P1', 'P2', 'P3', 'P4', 'security' or 'opt_out'"),
        ("weekly_maintenance", False, "'P1', 'P2', 'P3', 'P4', 'security' or 'opt_out'"),  # YAML's `off`
    ],
)
def test_runbook_failure_refuses_an_unknown_dag_or_setting(tmp_path, dag_id, setting, complaint):
    message = invalid(tmp_path, lambda d: d["incidents"]["runbook_failure"]["dags"].__setitem__(dag_id, setting))
    assert "incidents.runbook_failure.dags" in message and complaint in message


def test_runbook_failure_refuses_an_unknown_default_severity(tmp_path):
    message = invalid(tmp_path, lambda d: d["incidents"]["runbook_failure"].update(default_severity="opt_out"))
    assert "incidents.runbook_failure.default_severity" in message


def test_the_performance_runbook_scales_within_each_deployments_max_and_flushes_one_literal_prefix(tmp_path):
    config = load_config()
    assert config.kubernetes.deployment("tactical-marl").replicas.max == 6
    assert config.kubernetes.deployment("auth-service").replicas.max is None, "no max: never scaled up"
    assert config.incident_response.performance.cache_prefix == "grandmodel:md:"

    def mutate(d):
        d["kubernetes"]["deployments"][1]["replicas"]["max"] = 1  # strategic-marl runs 2 in market hours

    message = invalid(tmp_path, mutate)
    assert "kubernetes.deployments[1].replicas.max: max 1 is below the deployment's own" in message
    for prefix in ("*", "grandmodel:*", "grandmodel", "", "grandmodel:md:[a-z]:"):
        assert "cache_prefix" in invalid(tmp_path, lambda d, p=prefix: d["incident_response"]["performance"].update(
            cache_prefix=p))  # fmt: skip
