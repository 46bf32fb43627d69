"""The performance runbook's steps executed directly against the sandbox (``dag.test()`` never answers an HITL
approval): degraded deployments scaled up, read back with the real kubectl, never past their ``replicas.max`` even
when the plan asks for more; the cache flush deletes nothing unless the form chose it and the approval said
``Approve``, and then only the keys of the configured prefix (real Redis, in batches, the other keys intact);
ANALYZE moves ``pg_stat_user_tables.last_analyze``; the diagnostics show a real blocked query and its blocker. Each
step on the incident's trail by the triggering user."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest
import redis
from airflow.sdk.exceptions import AirflowSkipException

from tradeops.incident_response.performance import PerformanceDiagnosticsOperator, PerformancePlanOperator
from tradeops.incident_response.performance_actions import (
    FlushCacheOperator,
    RefreshStatisticsOperator,
    ScaleWithinLimitsOperator,
)
from tradeops.kubernetes.patches import SAVED_REPLICAS

PREFIX = "grandmodel:md:"


def trail(service, incident_id: int) -> dict[str, dict]:
    events = service.timeline(incident_id)
    return {e.detail["step"]: {"by": e.actor, **e.detail} for e in events if e.kind.value == "runbook_step"}


@pytest.fixture
def cache(sandbox_settings):
    """The sandbox's Redis, with 1,200 more keys under the prefix (more than one batch) and two decoys that only
    look like it; every key as it was before put back after (values and TTLs), the added ones removed."""
    client = redis.Redis.from_url(sandbox_settings["redis"]["url"])
    before = {key: (client.dump(key), client.pttl(key)) for key in client.scan_iter(count=1000)}
    pipe = client.pipeline()
    for n in range(1200):
        pipe.set(f"{PREFIX}bulk:{n}", n)
    pipe.set("grandmodel:mdx:decoy", 1).set("grandmodel:md", 1).execute()
    yield client
    for key in client.scan_iter(count=1000):
        if key not in before:
            client.unlink(key)
    for key, (dumped, ttl) in before.items():
        if not client.exists(key):
            client.restore(key, max(ttl, 0), dumped)


def test_scaling_stops_at_each_deployments_max_read_back_with_kubectl(
    context, xcoms, incident, cluster, kubectl, config, sandbox
):
    opened = incident("P2")
    tactical, strategic = config.kubernetes.deployment("tactical-marl"), config.kubernetes.deployment("strategic-marl")
    kubectl.ok("scale", "deployment/tactical-marl", "--replicas=3")
    kubectl.ok("scale", "deployment/strategic-marl", f"--replicas={strategic.replicas.max}")  # already at its max
    sandbox.set_faults("platform_api", unhealthy=["tactical-marl", "strategic-marl"])

    planned = PerformancePlanOperator(
        task_id="plan", incident_id=opened.id, namespace="grandmodel", flush_cache=False
    ).execute(context)
    assert {"tactical-marl", "strategic-marl"} <= set(planned["degraded"])
    assert [c for c in planned["plan"] if c["action"] == "scale"] == [
        {"action": "scale", "target": "tactical-marl", "before": 3, "after": 4, "max": tactical.replicas.max}
    ], "strategic-marl is at its max: left out"
    xcoms["performance.plan"] = planned
    scale = ScaleWithinLimitsOperator(
        task_id="scale", incident_id=opened.id, namespace="grandmodel", plan_task="performance.plan"
    )
    assert scale.execute(context) == [{"deployment": "tactical-marl", "from": 3, "to": 4}]
    replicas = cluster.snapshot()["replicas"]
    assert replicas["tactical-marl"] == 4 and replicas["strategic-marl"] == strategic.replicas.max
    annotations = kubectl.json("get", "deployment", "tactical-marl")["metadata"]["annotations"]
    assert annotations[SAVED_REPLICAS] == "3", "the restore profile puts it back"
    assert scale.execute(context) == [], "a retry writes nothing more"

    # A plan asking for more than the max (stale or forged) is capped when applied.
    forged = [{"action": "scale", "target": "tactical-marl", "after": 10},
              {"action": "scale", "target": "auth-service", "after": 5}]  # fmt: skip
    xcoms["performance.plan"] = {"plan": forged}
    assert scale.execute(context) == [{"deployment": "tactical-marl", "from": 4, "to": tactical.replicas.max}]
    assert kubectl.json("get", "deployment", "tactical-marl")["spec"]["replicas"] == tactical.replicas.max == 6
    saved = kubectl.json("get", "deployment", "tactical-marl")["metadata"]["annotations"][SAVED_REPLICAS]
    assert saved == "3", "the first change's count is kept: the restore goes back to before the response"
    assert kubectl.json("get", "deployment", "auth-service")["spec"]["replicas"] == 2, "no max: never scaled"

    steps = trail(incident.service, opened.id)
    assert steps["scale"]["by"] == "alice" and steps["scale"]["scaled"] == [
        {"deployment": "tactical-marl", "from": 4, "to": 6}
    ]
    assert "tactical-marl 3 → 4 (max 6)" in steps["plan"]["summary"]


def test_no_key_is_deleted_without_the_forms_choice_and_the_approval_then_only_the_prefix(
    context, xcoms, incident, cache, config
):
    opened = incident("P2")
    everything = set(cache.scan_iter(count=1000))
    ours = {key for key in everything if key.decode().startswith(PREFIX)}
    assert len(ours) > 1200 and b"grandmodel:session:user01" in everything

    def flush(chosen: bool) -> FlushCacheOperator:
        return FlushCacheOperator(
            task_id="flush_cache", incident_id=opened.id, chosen=chosen, approval_task="performance.approve"
        )

    approved = {"chosen_options": ["Approve"], "params_input": {}, "responded_by_user": {"id": "bob"}}
    automatic = {**approved, "responded_by_user": None}  # an approval alerts.runbooks gave, no person's
    for chosen, answer in ((False, approved), (True, None), (True, {**approved, "chosen_options": ["Reject"]}),
                           (True, automatic)):  # fmt: skip
        xcoms["performance.approve"] = answer
        with pytest.raises(AirflowSkipException, match="nothing deleted"):
            flush(chosen).execute(context)
        assert set(cache.scan_iter(count=1000)) == everything
    assert "flush_cache" not in trail(incident.service, opened.id)

    xcoms["performance.approve"] = approved
    flushed = flush(True).execute(context)
    assert flushed == {"prefix": PREFIX, "deleted": len(ours)}
    assert set(cache.scan_iter(count=1000)) == everything - ours
    assert {b"grandmodel:mdx:decoy", b"grandmodel:md", b"grandmodel:flags"} <= everything - ours
    recorded = trail(incident.service, opened.id)["flush_cache"]
    assert (recorded["deleted"], recorded["by"], recorded["approved_by"]) == (len(ours), "alice", "bob")


def test_analyze_refreshes_the_platform_tables_statistics(context, incident, sandbox_settings, config):
    opened = incident("P2")
    dsn = sandbox_settings["postgres"]["platform_dsn"]
    query = "SELECT relname, last_analyze FROM pg_stat_user_tables WHERE relname = ANY(%s)"
    names = ["trades", "positions", "users"]
    with psycopg.connect(dsn) as conn:
        before = dict(conn.execute(query, (names,)).fetchall())
    started = datetime.now(UTC)

    analyzed = RefreshStatisticsOperator(task_id="analyze", incident_id=opened.id).execute(context)
    assert analyzed == [t.name for t in config.database.tables]
    deadline = time.monotonic() + 10  # the analyzing backend reports its statistics when its session ends
    while True:
        with psycopg.connect(dsn) as conn:
            after = dict(conn.execute(query, (names,)).fetchall())
        if all(after[n] and after[n] >= started for n in names) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for name in names:
        assert after[name] is not None and after[name] >= started and after[name] != before[name], name
    assert trail(incident.service, opened.id)["analyze"]["tables"] == analyzed


def test_the_diagnostics_show_the_top_consumers_a_blocked_query_and_latency(
    context, incident, sandbox_settings, config
):
    opened = incident("P2")
    dsn = sandbox_settings["postgres"]["platform_dsn"]
    holder = psycopg.connect(dsn)
    holder.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")  # in an open transaction: held until rollback
    holder_pid = holder.info.backend_pid

    def wait_on_the_lock() -> None:
        with psycopg.connect(dsn, options="-c lock_timeout=20000", application_name="tests-blocked") as conn:
            try:
                conn.execute("SELECT count(*) FROM users")
            except psycopg.errors.LockNotAvailable:
                pass

    waiter = threading.Thread(target=wait_on_the_lock)
    waiter.start()
    try:
        with psycopg.connect(dsn) as conn:
            for _ in range(100):
                if conn.execute("SELECT 1 FROM pg_stat_activity WHERE application_name = 'tests-blocked' "
                                "AND wait_event_type = 'Lock'").fetchone():  # fmt: skip
                    break
                time.sleep(0.1)
        found = PerformanceDiagnosticsOperator(task_id="diagnostics", incident_id=opened.id, top=3).execute(context)
    finally:
        holder.rollback()
        holder.close()
        waiter.join(30)

    assert len(found["consumers"]["cpu"]) == 3 and len(found["consumers"]["memory"]) == 3
    cpu = [c["cpu_pct"] for c in found["consumers"]["cpu"]]
    assert cpu == sorted(cpu, reverse=True)
    blocked = found["blocked"]["sessions"]
    assert found["blocked"]["count"] >= 1 and any(holder_pid in s["blocked_by"] for s in blocked)
    assert any("FROM users" in s["query"] for s in blocked)
    assert found["active"]["count"] >= 1 and len(found["active"]["queries"]) <= 3
    assert found["latency"]["platform_1h"]["response_time_p95_ms"] > 0
    assert len(found["latency"]["by_component_24h"]) <= 3
    recorded = trail(incident.service, opened.id)["diagnostics"]
    assert recorded["by"] == "alice" and recorded["blocked"]["count"] == found["blocked"]["count"]
