"""The blue-green steps that guard against taking a service down, against the sandbox's Kubernetes API as
TradeOps' least-privilege identity: a green the Service still selects is never deleted by the clean-up, and a new
deploy refuses to start while a Service selects green."""

from __future__ import annotations

import types

import pytest
from airflow.sdk.exceptions import AirflowFailException

from tradeops.deploy.bluegreen import green_manifest
from tradeops.deploy.operators import CleanUpGreenOperator, DeployGreenOperator, green_exists

NAMESPACE = "grandmodel"
SERVICE = "auth-service"


@pytest.fixture
def green_serving(k8s_connection, airflow_connections, config):
    """auth-service-green created and selected by the Service (as mid-soak); both undone after the test."""
    from tradeops.kubernetes.hooks import KubernetesApiHook

    admin = KubernetesApiHook(k8s_connection("admin"))
    blue = admin.deployment(NAMESPACE, SERVICE)
    image = config.kubernetes.deployment(SERVICE).image
    admin.call(
        "create",
        "deployments",
        None,
        NAMESPACE,
        admin.apps.create_namespaced_deployment,
        NAMESPACE,
        green_manifest(blue, SERVICE, image),
    )
    admin.patch_service(NAMESPACE, SERVICE, {"spec": {"selector": {"color": "green"}}})
    plan = {"dry_run": False, "namespace": NAMESPACE, "services": {SERVICE: {"container": SERVICE, "image": image}}}
    context = {"ti": types.SimpleNamespace(xcom_pull=lambda task_ids: plan)}
    yield types.SimpleNamespace(admin=admin, context=context)
    admin.patch_service(NAMESPACE, SERVICE, {"spec": {"selector": {"color": "blue"}}})
    if green_exists(admin, NAMESPACE, f"{SERVICE}-green"):
        admin.call(
            "delete",
            "deployments",
            f"{SERVICE}-green",
            NAMESPACE,
            admin.apps.delete_namespaced_deployment,
            f"{SERVICE}-green",
            NAMESPACE,
        )


def test_the_clean_up_keeps_a_green_that_serves_and_deletes_one_that_does_not(green_serving):
    clean_up = CleanUpGreenOperator(task_id="clean_up")
    assert clean_up.execute(green_serving.context) == {SERVICE: "green still serving: kept"}
    assert green_exists(green_serving.admin, NAMESPACE, f"{SERVICE}-green")
    green_serving.admin.patch_service(NAMESPACE, SERVICE, {"spec": {"selector": {"color": "blue"}}})
    assert clean_up.execute(green_serving.context) == {SERVICE: "green deleted"}
    assert not green_exists(green_serving.admin, NAMESPACE, f"{SERVICE}-green")
    assert clean_up.execute(green_serving.context) == {SERVICE: "no green"}


def test_a_deploy_refuses_to_start_while_a_service_selects_green(green_serving):
    with pytest.raises(AirflowFailException, match="selects green already"):
        DeployGreenOperator(task_id="deploy_green").execute(green_serving.context)
    assert green_exists(green_serving.admin, NAMESPACE, f"{SERVICE}-green")
