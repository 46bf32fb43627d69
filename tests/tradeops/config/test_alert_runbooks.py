"""The alert -> runbook table (``alerts.runbooks``): literal label matching, literal dedup-key matching (``key``
entries, for non-alert incidents), the first matching entry wins, and a table the model refuses (a runbook type the
form does not offer, an unknown key, an empty match, neither or both of match and key)."""

from __future__ import annotations

import copy

import pytest
import yaml

from tests.tradeops.config.test_config import GOOD, REPO, write
from tradeops.config import load_config
from tradeops.config.alerts import AlertIntake, RunbookEntry
from tradeops.exceptions import ConfigError
from tradeops.incident_response.forms import RESPONSE_TYPES

TABLE = AlertIntake(
    runbooks=[
        RunbookEntry(match={"alertname": "TradingSystemDown", "severity": "critical"}, type="system_failure"),
        RunbookEntry(match={"alertname": "RiskLimitBreach"}, type="critical", act_without_approval=True),
        RunbookEntry(match={"severity": "critical"}, type="critical"),
    ]
)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"alertname": "TradingSystemDown", "severity": "critical", "job": "x"}, 0),
        ({"alertname": "TradingSystemDown", "severity": "warning"}, None),
        ({"alertname": "RiskLimitBreach", "severity": "critical"}, 1),  # the first match wins, not the broadest
        ({"alertname": "OtherDown", "severity": "critical"}, 2),
        ({"alertname": "tradingsystemdown", "severity": "Critical"}, None),  # case counts
        ({"alertname": "TradingSystemDown*", "severity": "crit"}, None),
        ({"alertname": "RiskLimitBreach "}, None),  # no trimming
        ({"alertname": "Risk.*"}, None),
        ({}, None),
    ],
)
def test_an_alert_matches_an_entry_only_with_every_label_equal_and_the_first_entry_wins(labels, expected):
    assert TABLE.runbook_for(labels) == (None if expected is None else TABLE.runbooks[expected])


def test_a_pattern_in_the_table_is_a_literal_string_not_a_wildcard():
    entry = RunbookEntry(match={"alertname": "Trading.*"}, type="critical")
    assert not entry.matches({"alertname": "TradingSystemDown"})
    assert entry.matches({"alertname": "Trading.*"})


def test_the_shipped_tables_hold_approval_except_the_demos_risk_breach():
    production = load_config().alerts
    demo = load_config(REPO / "include" / "config" / "tradeops.demo.yaml").alerts
    critical = {"severity": "critical"}
    assert production.runbook_for({"alertname": "TradingSystemDown", **critical}).type == "system_failure"
    assert not any(entry.act_without_approval for entry in production.runbooks)
    assert demo.runbook_for({"alertname": "RiskLimitBreach", **critical}).act_without_approval is True
    assert production.runbook_for({"alertname": "HighCPUUsage", "severity": "warning"}) is None
    assert {entry.type for entry in production.runbooks + demo.runbooks} <= set(RESPONSE_TYPES)


KEYED = AlertIntake(
    runbooks=[
        RunbookEntry(match={"alertname": "SystemDown"}, type="critical"),
        RunbookEntry(key="check:daily_health_check:system_status", type="system_failure"),
        RunbookEntry(key="check:daily_health_check:system_status", type="critical"),
    ]
)


@pytest.mark.parametrize(
    ("dedup_key", "expected"),
    [
        ("check:daily_health_check:system_status", 1),  # the first keyed entry wins
        ("check:daily_health_check:system_status ", None),  # no trimming
        ("CHECK:daily_health_check:system_status", None),  # case counts
        ("check:daily_health_check:", None),  # no prefix match
        ("check:daily_health_check:system_status:extra", None),
        ("check:*", None),
        ("SystemDown", None),  # a labels entry never matches a key
        ("", None),
    ],
)
def test_a_key_entry_matches_only_the_exact_dedup_key(dedup_key, expected):
    assert KEYED.runbook_for_key(dedup_key) == (None if expected is None else KEYED.runbooks[expected])


def test_a_key_entry_never_matches_an_alerts_labels_and_a_wildcard_key_is_literal():
    entry = RunbookEntry(key="check:*", type="critical")
    assert not entry.matches({"alertname": "check:*"}) and not entry.matches({})
    assert KEYED.runbook_for({"key": "check:daily_health_check:system_status"}) is None
    assert AlertIntake(runbooks=[entry]).runbook_for_key("check:daily_health_check:system_status") is None


def test_production_starts_the_system_failure_runbook_for_a_failed_system_status_check_the_demo_on_a_drill_key():
    entry = load_config().alerts.runbook_for_key("check:daily_health_check:system_status")
    assert entry is not None and entry.type == "system_failure" and not entry.act_without_approval
    demo = load_config(REPO / "include" / "config" / "tradeops.demo.yaml").alerts
    assert demo.runbook_for_key("check:daily_health_check:system_status") is None, "its drills fail that check"
    drill = demo.runbook_for_key("drill:engine_runbook_start")
    assert drill is not None and drill.type == "system_failure" and not drill.act_without_approval
    assert demo.runbook_for({"alertname": "LatencyCritical", "severity": "critical"}).type == "performance"


def table_error(tmp_path, entry: dict) -> str:
    data = copy.deepcopy(GOOD)
    data["alerts"]["runbooks"] = [{"match": {"alertname": "SystemDown"}, "type": "critical"}, entry]
    path = write(tmp_path, yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return str(err.value)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"match": {"alertname": "A"}, "type": "everything"}, "alerts.runbooks[1].type: 'everything' is not a runbook"),
        ({"match": {"alertname": "A"}, "type": "critical", "approve": False}, "alerts.runbooks[1].approve: unknown"),
        ({"match": {}, "type": "critical"}, "alerts.runbooks[1].match: "),
        ({"match": {"alertname": 3}, "type": "critical"}, "alerts.runbooks[1].match.alertname: "),
        ({"type": "critical"}, "alerts.runbooks[1]: an entry has exactly one of match (an alert's labels) or key"),
        (
            {"match": {"alertname": "A"}, "key": "check:x:y", "type": "critical"},
            "alerts.runbooks[1]: an entry has exactly one of match (an alert's labels) or key",
        ),
        ({"key": "", "type": "critical"}, "alerts.runbooks[1].key: "),
        ({"key": ["check:x:y"], "type": "critical"}, "alerts.runbooks[1].key: "),
    ],
    ids=["unknown type", "unknown key", "empty match", "not a string", "no match", "both", "empty key", "key list"],
)
def test_a_bad_table_entry_is_refused_at_its_field(tmp_path, entry, message):
    assert message in table_error(tmp_path, entry)
