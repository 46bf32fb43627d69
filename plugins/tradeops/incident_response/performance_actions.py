"""The performance-degradation runbook's changes, never in a dry run: refresh the planner statistics (``ANALYZE``,
which takes no lock a writer waits on), scale the degraded deployments (after the approval, under the deployment
lease, never past ``replicas.max``), and flush the cache keys of the configured prefix (only when chosen in the form
and approved; ``SCAN`` + ``UNLINK`` in batches, never ``FLUSHALL`` or ``KEYS``). Each records what it did on the
incident by the run's triggering user and is safe to retry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from tradeops.config import load_config
from tradeops.incident_response.operators import RunbookStep, flag

if TYPE_CHECKING:
    from airflow.sdk import Context

APPROVE = "Approve"


def flush_prefix(client: Any, prefix: str, batch: int) -> int:
    """Delete the keys starting with ``prefix``: one ``SCAN`` page at a time (``batch`` keys asked per page), each
    page's keys unlinked together (freed in the background, the server never blocked). Returns how many were
    deleted."""
    from tradeops.incident_response.performance import cache_match

    deleted, page = 0, []
    for key in client.scan_iter(match=cache_match(prefix), count=batch):
        wanted = prefix.encode() if isinstance(key, bytes) else prefix  # bytes compared as bytes: any key's encoding
        if not key.startswith(wanted):  # SCAN MATCH is a glob: keep to the literal prefix whatever it returns
            continue
        page.append(key)
        if len(page) >= batch:
            deleted += client.unlink(*page)
            page = []
    if page:
        deleted += client.unlink(*page)
    return deleted


class ScaleWithinLimitsOperator(RunbookStep, BaseOperator):
    """Apply the plan's scale changes: each deployment to the plan's count, capped again at its ``replicas.max`` as
    the config says now (a count past it is never written), only up and never from 0, the count replaced recorded
    on the deployment unless an earlier change's is there (``tradeops.io/replicas-before-scale``:
    ``ScaleDeploymentsOperator(profile="restore")`` puts it back) and on the incident. A retry writes the same
    counts. Returns ``[{deployment, from, to}]`` of what changed.

    :param incident_id: the incident. (templated)
    :param namespace: the deployments' namespace.
    :param plan_task: the task whose XCom holds the plan (``{plan: [...]}``).
    """

    template_fields: Sequence[str] = ("incident_id",)
    ui_color = "#fbe3d6"

    def __init__(self, *, incident_id: int | str, namespace: str, plan_task: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.incident_id = incident_id
        self.namespace = namespace
        self.plan_task = plan_task

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from tradeops.incident_response.performance import scalable
        from tradeops.kubernetes.hooks import KubernetesApiHook
        from tradeops.kubernetes.patches import SAVED_REPLICAS, scale_patch

        config = load_config()
        limits = scalable(config, self.namespace)
        hook = KubernetesApiHook(config.connections.kubernetes)
        planned = context["ti"].xcom_pull(task_ids=self.plan_task)["plan"]
        scaled = []
        for change in (c for c in planned if c["action"] == "scale" and c["target"] in limits):
            name, target = change["target"], min(change["after"], limits[change["target"]])

            def read(name: str = name) -> dict[str, Any]:
                return hook.deployment(self.namespace, name)

            def up(obj: dict[str, Any], target: int = target) -> dict[str, Any] | None:
                if not 0 < obj["spec"]["replicas"] < target:
                    return None
                patch = scale_patch(obj, target)
                if patch is not None and SAVED_REPLICAS in (obj["metadata"].get("annotations") or {}):
                    del patch["metadata"]["annotations"]  # an earlier change's count is the one a restore wants
                return patch

            def write(obj: dict[str, Any], body: dict[str, Any], name: str = name) -> dict[str, Any]:
                return hook.patch_deployment(self.namespace, name, body)

            before, _, patch = hook.update(read, up, write)
            if patch is not None:
                scaled.append({"deployment": name, "from": before["spec"]["replicas"], "to": target})
        lines = [f"{s['deployment']} {s['from']} → {s['to']}" for s in scaled]
        summary = f"scaled within the limits: {', '.join(lines)}" if scaled else "nothing to scale"
        self.log.info("%s", summary)
        self.record(context, "scale", {"summary": summary, "scaled": scaled})
        return scaled


class RefreshStatisticsOperator(RunbookStep, BaseOperator):
    """``ANALYZE`` each of the platform's tables (``database.tables``) under the maintenance settings' lock timeout
    and retries (ANALYZE takes a lock no reader or writer waits on; it only waits on schema changes), so the planner
    works from fresh statistics. Returns the tables analyzed.

    :param incident_id: the incident. (templated)
    :param tables: the tables, by name; default: every table of the config's ``database.tables``.
    """

    template_fields: Sequence[str] = ("incident_id",)

    def __init__(self, *, incident_id: int | str, tables: Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.incident_id = incident_id
        self.tables = list(tables) if tables is not None else None

    def execute(self, context: Context) -> list[str]:
        from tradeops.connections import postgres_dsn
        from tradeops.database import upkeep
        from tradeops.database.session import connect

        config = load_config()
        names = self.tables if self.tables is not None else [t.name for t in config.database.tables]
        tables = [config.database.table(name).name for name in names]  # only the config's tables
        settings = config.database.maintenance
        dsn = postgres_dsn(config.connections.platform_db)
        with connect(dsn, settings, application_name="tradeops-runbook:analyze") as conn:
            for table in tables:
                upkeep.analyze(conn, table, settings)
        summary = f"planner statistics refreshed (ANALYZE): {', '.join(tables)}"
        self.log.info("%s", summary)
        self.record(context, "analyze", {"summary": summary, "tables": tables})
        return tables


class FlushCacheOperator(RunbookStep, BaseOperator):
    """Delete the cache keys starting with the configured prefix (``incident_response.performance.cache_prefix``)
    with ``SCAN`` + ``UNLINK`` in batches, only when the form chose it **and** the approval task answered
    ``Approve`` (either missing: skipped, nothing deleted); recorded on the incident with who approved. Returns
    ``{prefix, deleted}``.

    :param incident_id: the incident. (templated)
    :param chosen: the form's ``flush_cache``. (templated)
    :param approval_task: the approval whose answer must be ``Approve``.
    """

    template_fields: Sequence[str] = ("incident_id", "chosen")
    ui_color = "#fbe3d6"

    def __init__(self, *, incident_id: int | str, chosen: bool | str, approval_task: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.incident_id = incident_id
        self.chosen = chosen
        self.approval_task = approval_task

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.redis.hooks.redis import RedisHook
        from airflow.sdk.exceptions import AirflowSkipException

        if not flag(self.chosen):
            raise AirflowSkipException("cache flush not chosen in the form: nothing deleted")
        answer = context["ti"].xcom_pull(task_ids=self.approval_task) or {}
        if answer.get("chosen_options") != [APPROVE]:
            raise AirflowSkipException(f"cache flush not approved ({self.approval_task}): nothing deleted")
        if not answer.get("responded_by_user"):  # approved without a person (alerts.runbooks): scaling, never a flush
            raise AirflowSkipException("cache flush approved by no person: nothing deleted")
        config = load_config()
        settings = config.incident_response.performance
        client = RedisHook(redis_conn_id=config.connections.redis).get_conn()
        deleted = flush_prefix(client, settings.cache_prefix, settings.cache_batch)
        responder = answer.get("responded_by_user") or {}
        approved_by = responder.get("id") or responder.get("name")
        summary = f"{deleted} cache key(s) starting with '{settings.cache_prefix}' deleted (SCAN + UNLINK)"
        self.log.info("%s; approved by %s", summary, approved_by)
        detail = {"summary": summary, "deleted": deleted, "prefix": settings.cache_prefix, "approved_by": approved_by}
        self.record(context, "flush_cache", detail)
        return {"prefix": settings.cache_prefix, "deleted": deleted}
