"""What the Kubernetes operators write, decided on fixed objects (pure): the patch, or nothing when the object is
already as wanted; and what a diagnostics archive keeps within its budgets."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tradeops.kubernetes.diagnostics import DiagnosticsBundle
from tradeops.kubernetes.patches import (
    RESTART_ID,
    RESTARTED_AT,
    SAVED_REPLICAS,
    label_selector,
    restart_patch,
    scale_patch,
    service_patch,
)


def deployment(replicas: int = 2, annotations: dict | None = None, template_annotations: dict | None = None) -> dict:
    return {
        "metadata": {"name": "web", "resourceVersion": "41", "annotations": annotations},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web", "tier": "front"}},
            "template": {"metadata": {"annotations": template_annotations}},
        },
    }


def test_a_scale_records_the_count_it_replaces_and_restore_puts_it_back():
    assert scale_patch(deployment(2), 5) == {
        "metadata": {"resourceVersion": "41", "annotations": {SAVED_REPLICAS: "2"}},
        "spec": {"replicas": 5},
    }
    assert scale_patch(deployment(5), 5) is None
    assert scale_patch(deployment(0, {SAVED_REPLICAS: "3"}), None) == {
        "metadata": {"resourceVersion": "41", "annotations": {SAVED_REPLICAS: None}},
        "spec": {"replicas": 3},
    }
    assert scale_patch(deployment(3), None) is None, "nothing recorded: nothing to restore"


def test_a_restart_is_stamped_once_per_restart_id():
    patch = restart_patch(deployment(), "dag/run-1", "2026-11-22T07:00:00Z")
    assert patch == {
        "spec": {
            "template": {"metadata": {"annotations": {RESTARTED_AT: "2026-11-22T07:00:00Z", RESTART_ID: "dag/run-1"}}}
        }
    }
    done = deployment(template_annotations={RESTART_ID: "dag/run-1", RESTARTED_AT: "2026-11-22T07:00:00Z"})
    assert restart_patch(done, "dag/run-1", "2026-11-22T07:05:00Z") is None
    assert restart_patch(done, "dag/run-2", "2026-11-22T07:05:00Z") is not None


def test_a_service_patch_changes_only_what_differs():
    service = {"spec": {"type": "LoadBalancer", "selector": {"app": "api"}}}
    assert service_patch(service, "ClusterIP", None) == [{"op": "replace", "path": "/spec/type", "value": "ClusterIP"}]
    assert service_patch(service, "LoadBalancer", {"app": "api"}) == []
    assert service_patch(service, None, {"app": "api", "color": "green"}) == [
        {"op": "replace", "path": "/spec/selector", "value": {"app": "api", "color": "green"}}
    ]
    with pytest.raises(ValueError, match="unsupported service type 'ExternalName'"):
        service_patch(service, "ExternalName", None)


def test_label_selector():
    assert label_selector(deployment()) == "app=web,tier=front"


def test_diagnostics_keep_logs_within_budgets_and_say_what_was_cut():
    bundle = DiagnosticsBundle(
        max_bytes_per_container=10, max_total_bytes=15, max_events=2, collected_at=datetime(2026, 11, 22, tzinfo=UTC)
    )
    assert bundle.log_limit("logs/a.log") == 10
    bundle.add_log("logs/a.log", b"0123456789abc", 10)
    assert bundle.log_limit("logs/b.log") == 5
    bundle.add_log("logs/b.log", b"xy", 5)
    assert bundle.log_limit("logs/c.log") == 3
    bundle.add_log("logs/c.log", b"abc", 3)
    assert bundle.log_limit("logs/d.log") is None
    bundle.add_events("ns", [{"lastTimestamp": "3"}, {"lastTimestamp": "1"}, {"eventTime": "2"}])
    bundle.add_error(RuntimeError("pods/log forbidden"))
    files = bundle.contents()
    manifest = json.loads(files.pop("manifest.json"))
    assert files == {
        "logs/a.log": b"0123456789",
        "logs/b.log": b"xy",
        "logs/c.log": b"abc",
        "events/ns.json": json.dumps([{"eventTime": "2"}, {"lastTimestamp": "3"}], indent=1).encode(),
    }
    assert manifest == {
        "collected_at": "2026-11-22T00:00:00+00:00",
        "errors": ["pods/log forbidden"],
        "truncated": True,
        "logs": [
            {"file": "logs/a.log", "bytes": 10, "truncated": True},
            {"file": "logs/b.log", "bytes": 2, "truncated": False},
            {"file": "logs/c.log", "bytes": 3, "truncated": True},
            {"file": "logs/d.log", "skipped": "total size budget reached"},
        ],
    }
