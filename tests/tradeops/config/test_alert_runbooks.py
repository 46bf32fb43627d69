"""The alert -> runbook table (``alerts.runbooks``): literal label matching, the first matching entry wins, and a
table the model refuses (a runbook type the form does not offer, an unknown key, an empty match)."""

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
        ({"type": "critical"}, "alerts.runbooks[1].match: Field required"),
    ],
    ids=["unknown type", "unknown key", "empty match", "not a string", "no match"],
)
def test_a_bad_table_entry_is_refused_at_its_field(tmp_path, entry, message):
    assert message in table_error(tmp_path, entry)
