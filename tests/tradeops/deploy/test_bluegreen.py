"""Blue-green's pure rules: the form, green's manifest, the image it runs, the plan, the market-hours gate and how a
run's task states read as an outcome."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from airflow.sdk.exceptions import AirflowFailException, ParamValidationError

from tests.forms import validate_form
from tradeops.changes.plans import render_plan
from tradeops.deploy import bluegreen
from tradeops.deploy.operators import PlanBlueGreenOperator
from tradeops.deploy.report import outcome

VALID = {"version": "2.3.0", "services": ["auth-service"], "reason": "release 2.3.0"}

INVALID = [
    ({**VALID, "version": "latest"}, "does not match"),
    ({**VALID, "version": "1.2.3; rm -rf /"}, "does not match"),
    ({**VALID, "version": "$(id)"}, "does not match"),
    ({**VALID, "version": "../../x"}, "does not match"),
    ({**VALID, "version": "1" * 10_000}, "param version"),
    ({**VALID, "version": "1.2.3\n"}, "should not be valid|is not allowed"),
    ({"services": ["auth-service"], "reason": "r3l"}, "version"),
    ({**VALID, "services": ["auth-service; kubectl delete"]}, "is not one of"),
    ({**VALID, "services": []}, "should be non-empty|is too short"),
    ({**VALID, "services": ["auth-service", "auth-service"]}, "non-unique|has non-unique"),
    ({"version": "2.3.0", "services": ["auth-service"]}, "reason"),
    ({**VALID, "reason": "    "}, "does not match"),
    ({**VALID, "dry_run": "no"}, "is not of type 'boolean'"),
    ({**VALID, "break_glass": True, "break_glass_reason": "   "}, "does not match"),
]


@pytest.fixture(scope="module")
def dag(dagbag, airflow_db):
    return dagbag.get_dag("blue_green_deploy")


@pytest.mark.parametrize(("conf", "complaint"), INVALID, ids=[str(i) for i in range(len(INVALID))])
def test_the_form_refuses_bad_input_before_a_run_exists(dag, conf, complaint):
    with pytest.raises(ParamValidationError, match=complaint):
        validate_form(dag, conf)


def test_the_form_accepts_a_release_and_defaults_to_a_dry_run(dag):
    values = validate_form(dag, VALID)
    assert values["dry_run"] is True and values["break_glass"] is False
    validate_form(dag, {**VALID, "services": ["auth-service", "api-gateway"], "dry_run": False})
    validate_form(dag, {**VALID, "break_glass": True, "break_glass_reason": "CVE fix, approved by the CTO"})


BLUE = {
    "metadata": {"name": "auth-service", "namespace": "grandmodel", "labels": {"app": "auth-service"}, "uid": "u1"},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "auth-service"}},
        "template": {
            "metadata": {"labels": {"app": "auth-service", "color": "blue"}, "annotations": {"restartedAt": "x"}},
            "spec": {"containers": [{"name": "auth-service", "image": "reg/grandmodel/auth-service:2.2.7"}]},
        },
    },
}
SERVICE = {"metadata": {"name": "auth-service"}, "spec": {"selector": {"app": "auth-service", "color": "blue"}}}


def test_green_is_blue_with_the_new_image_and_its_own_colour():
    green = bluegreen.green_manifest(BLUE, "auth-service", "reg/grandmodel/auth-service:2.3.0", 15)
    assert green["metadata"] == {
        "name": "auth-service-green",
        "namespace": "grandmodel",
        "labels": {"app": "auth-service", "color": "green"},
    }
    assert green["spec"]["selector"] == {"matchLabels": {"app": "auth-service", "color": "green"}}
    assert green["spec"]["template"]["metadata"] == {"labels": {"app": "auth-service", "color": "green"}}
    assert green["spec"]["template"]["spec"]["containers"][0]["image"] == "reg/grandmodel/auth-service:2.3.0"
    assert green["spec"]["progressDeadlineSeconds"] == 15
    assert BLUE["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":2.2.7")  # blue untouched


def test_the_new_image_keeps_blues_repository_and_must_match_the_config(config):
    allowed, version = config.kubernetes.allowed_image_pattern, config.blue_green.version_pattern
    current = "registry.quantnova.internal/grandmodel/auth-service:2.2.7"
    assert bluegreen.new_image(current, "2.3.0", version, allowed) == current.replace("2.2.7", "2.3.0")
    for bad in ("latest", "2.3.0;id", "2.3"):
        with pytest.raises(ValueError, match="does not match"):
            bluegreen.new_image(current, bad, version, allowed)
    with pytest.raises(ValueError, match="allowed_image_pattern"):
        bluegreen.new_image("docker.io/evil/auth-service:1.0.0", "2.3.0", version, allowed)


def test_the_plan_lists_every_change_in_order_and_adopts_an_uncoloured_blue():
    image = "reg/grandmodel/auth-service:2.3.0"
    adopted = bluegreen.plan("grandmodel", BLUE, SERVICE, "auth-service", image, green_exists=False)
    assert [(c.kind, c.name, c.field) for c in adopted] == [
        ("Deployment", "auth-service-green", "(create)"),
        ("Service", "auth-service", "spec.selector"),
        ("Deployment", "auth-service", "image[auth-service]"),
        ("Service", "auth-service", "spec.selector"),
        ("Deployment", "auth-service-green", "(delete)"),
    ]
    assert adopted[1].before == {"app": "auth-service", "color": "blue"}
    assert adopted[1].after == {"app": "auth-service", "color": "green"}
    assert adopted[2].before == "reg/grandmodel/auth-service:2.2.7" and adopted[2].after == image
    uncoloured = {**BLUE, "spec": {**BLUE["spec"], "template": {**BLUE["spec"]["template"], "metadata": {}}}}
    first = bluegreen.plan(
        "grandmodel", uncoloured, {"spec": {"selector": {"app": "auth-service"}}}, "auth-service", image, True
    )
    assert [c.field for c in first[:3]] == ["spec.template.labels.color", "spec.selector", "(delete)"]
    table = render_plan(bluegreen.switch_changes("grandmodel", [SERVICE], "green"))
    assert "Service/grandmodel/auth-service | spec.selector" in table and "'color': 'green'" in table


@pytest.mark.parametrize(
    ("moment", "break_glass", "reason", "refused"),
    [
        (datetime(2026, 12, 2, 16, 0, tzinfo=UTC), False, "", "refusing to deploy while XNYS is open"),
        (datetime(2026, 12, 2, 16, 0, tzinfo=UTC), True, "  ", "break-glass needs a reason"),
        (datetime(2026, 12, 2, 16, 0, tzinfo=UTC), True, "hotfix for the fill bug", None),
        (datetime(2026, 12, 5, 16, 0, tzinfo=UTC), False, "", None),  # a Saturday
    ],
)
def test_deploying_while_the_market_is_open_needs_break_glass_with_a_reason(moment, break_glass, reason, refused):
    step = PlanBlueGreenOperator(
        task_id="plan", services=["auth-service"], version="2.3.0", break_glass=break_glass, break_glass_reason=reason
    )
    if refused:
        with pytest.raises(AirflowFailException, match=refused):
            step.admit(moment)
    else:
        step.admit(moment)


def test_a_runs_states_read_as_its_outcome():
    assert outcome({"plan": "success", "prepare_blue": "skipped"}, True) == (
        "dry run: plan computed, nothing changed",
        False,
    )
    assert outcome({"retire_green": "success", "clean_up": "success"}, False)[1] is False
    assert outcome({"approve": "success", "switch": "skipped"}, False)[0].startswith("rejected")
    assert outcome({"soak": "failed", "promote": "upstream_failed"}, False) == (
        "green failed during the soak: switched back to blue, green deleted",
        True,
    )
    what, failure = outcome({"green_ready": "failed", "check_green": "upstream_failed"}, False)
    assert failure and "green_ready" in what
