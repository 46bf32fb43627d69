"""The performance-degradation runbook's reading steps: diagnostics (top CPU/memory consumers, the database's active
and blocked queries, latency by component) and the plan (what a real run scales, analyzes and flushes; what a dry
run lists and stops at). Each writes a bounded record on the incident's trail (``runbook_step``) by the run's
triggering user; neither changes anything."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from tradeops.config import load_config
from tradeops.incident_response.operators import RunbookStep, flag

if TYPE_CHECKING:
    from airflow.sdk import Context

    from tradeops.config import TradeOpsConfig

ACTIVE_QUERIES = """
SELECT pid, usename AS "user", application_name, wait_event_type,
       round(extract(epoch FROM now() - query_start))::int AS seconds, query
FROM pg_stat_activity
WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
ORDER BY query_start
"""
# The platform records each component's latency in system_metrics (metric latency_ms), as the daily report reads it.
LATENCY_BY_COMPONENT = """
SELECT component, round(percentile_cont(0.95) WITHIN GROUP (ORDER BY value)::numeric, 1)::float AS p95_ms,
       count(*) AS samples, max(ts) AS latest
FROM system_metrics WHERE metric = 'latency_ms' AND ts > now() - interval '24 hours'
GROUP BY component ORDER BY p95_ms DESC
"""
QUERY_KEYS = ("pid", "user", "application_name", "seconds", "query")


def platform_components(config: TradeOpsConfig) -> list[dict[str, Any]]:
    """The platform's components with their CPU and memory (``GET /v1/system/status``, the health check's source)."""
    from tradeops.platform.hooks import TradingPlatformHook

    return TradingPlatformHook(config.connections.platform_api).get("/v1/system/status")["components"]


def scalable(config: TradeOpsConfig, namespace: str) -> dict[str, int]:
    """``{deployment: replicas.max}`` of the namespace's deployments that declare a max (the others never scale)."""
    return {
        d.name: d.replicas.max
        for d in config.kubernetes.deployments
        if d.namespace == namespace and d.replicas.max is not None
    }


class PerformanceDiagnosticsOperator(RunbookStep, BaseOperator):
    """Read, change nothing: the ``top`` components by CPU and by memory (the platform's ``/v1/system/status``; the
    sandbox serves no ``metrics.k8s.io``), the database's active queries and the sessions blocked on locks with
    their blockers (:class:`~tradeops.database.checks.BlockedSessions`, ``pg_blocking_pids``), the platform's
    latency (p50/p95/p99 over the last hour) and each component's recorded p95; query texts redacted, every list cut
    to ``top``. Recorded on the incident; returns ``{summary, consumers, active, blocked, latency}``.

    :param incident_id: the incident. (templated)
    :param top: how many of each list to keep; default: the config's ``incident_response.performance.top``.
    """

    template_fields: Sequence[str] = ("incident_id",)

    def __init__(self, *, incident_id: int | str, top: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.incident_id = incident_id
        self.top = top

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.connections import postgres_dsn
        from tradeops.database.checks import BlockedSessions, redact
        from tradeops.database.session import connect
        from tradeops.incident_response.performance_plans import bounded, top_consumers
        from tradeops.platform.hooks import TradingPlatformHook

        config = load_config()
        top = self.top or config.incident_response.performance.top
        consumers = top_consumers(platform_components(config), top)
        metrics = TradingPlatformHook(config.connections.platform_api).get("/v1/performance/metrics", timeframe="1h")
        dsn = postgres_dsn(config.connections.platform_db)
        with connect(dsn, config.database.maintenance, application_name="tradeops-runbook:performance") as conn:
            active = conn.execute(ACTIVE_QUERIES).fetchall()
            for row in active:
                row["query"] = redact(row["query"])
            blocked = BlockedSessions().read(conn, config)
            by_component = conn.execute(LATENCY_BY_COMPONENT).fetchall()
        latency = {
            "platform_1h": {k: metrics.get(k) for k in ("response_time_p50_ms", "response_time_p95_ms",
                                                        "response_time_p99_ms", "error_rate_pct")},
            "by_component_24h": [{**row, "latest": row["latest"].isoformat()} for row in by_component[:top]],
        }  # fmt: skip
        found = {
            "consumers": consumers,
            "active": {"count": len(active), "queries": bounded(active, top, QUERY_KEYS)},
            "blocked": {
                "count": len(blocked),
                "sessions": bounded(blocked, top, ("pid", "user", "waiting_seconds", "blocked_by", "query")),
            },
            "latency": latency,
        }
        parts = [f"top CPU {c['name']} {c['cpu_pct']:g}%" for c in consumers["cpu"][:1]]
        parts += [f"top memory {c['name']} {c['memory_pct']}%" for c in consumers["memory"][:1]]
        parts.append(f"{len(active)} active and {len(blocked)} blocked queries")
        parts.append(f"p95 {metrics.get('response_time_p95_ms')} ms over the last hour")
        summary = "; ".join(parts)
        self.log.info("%s", summary)
        self.record(context, "diagnostics", {"summary": summary, **found})
        return {"summary": summary, **found}


class PerformancePlanOperator(RunbookStep, BaseOperator):
    """Read the degraded components (unhealthy, or above ``incident_response.performance``'s CPU or memory share),
    the scalable deployments' replicas (those with ``replicas.max``), and (only when the flush was chosen) how many
    cache keys start with the configured prefix; compute the plan and record it on the incident. Changes nothing,
    dry run or not. Returns ``{plan, text, dry_run, degraded, flush_cache}``.

    :param incident_id: the incident. (templated)
    :param namespace: the platform's namespace.
    :param flush_cache: the form's choice of a cache flush. (templated)
    """

    template_fields: Sequence[str] = ("incident_id", "flush_cache")

    def __init__(self, *, incident_id: int | str, namespace: str, flush_cache: bool | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.incident_id = incident_id
        self.namespace = namespace
        self.flush_cache = flush_cache

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.incident_response.performance_plans import (
            degraded,
            performance_plan,
            render,
            scale_plan,
            wanted_replicas,
        )
        from tradeops.kubernetes.hooks import KubernetesApiHook

        config = load_config()
        settings = config.incident_response.performance
        found = degraded(platform_components(config), settings.cpu_pct_above, settings.memory_pct_above)
        limits = scalable(config, self.namespace)
        hook = KubernetesApiHook(config.connections.kubernetes)
        replicas = {name: hook.deployment(self.namespace, name)["spec"]["replicas"] for name in limits}
        scale = scale_plan(replicas, wanted_replicas(replicas, list(found), settings.scale_step), limits)
        flush = flag(self.flush_cache)
        keys = count_keys(config, settings.cache_prefix, settings.cache_batch) if flush else 0
        tables = [table.name for table in config.database.tables]
        plan = performance_plan(scale, tables, settings.cache_prefix if flush else None, keys)
        return self.record_plan(context, plan, render(plan, found), degraded=found, flush_cache=flush)


def cache_match(prefix: str) -> str:
    """The ``SCAN MATCH`` pattern of the keys starting with ``prefix``: its glob characters escaped (literal)."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in prefix) + "*"


def count_keys(config: TradeOpsConfig, prefix: str, batch: int) -> int:
    """How many keys start with ``prefix`` (``SCAN``, never ``KEYS``: the server is never blocked)."""
    from airflow.providers.redis.hooks.redis import RedisHook

    client = RedisHook(redis_conn_id=config.connections.redis).get_conn()
    return sum(1 for _ in client.scan_iter(match=cache_match(prefix), count=batch))
