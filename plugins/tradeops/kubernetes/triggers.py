"""``RolloutStatusTrigger``: follow rollouts in the triggerer with the async Kubernetes client, the way
``kubectl rollout status`` does (read with a ``metadata.name`` field selector, then watch from that
resourceVersion), several workloads at once.

A watch that ends (the server's timeout, a dropped connection, an expired resourceVersion) is re-established after
a short, bounded backoff, re-reading the object first so nothing is missed; 5xx answers are retried the same way.
Done: the task succeeds straight from the triggerer (no worker needed). Failed (kubectl's failure, 403/404, the
workload deleted) or timed out: the task resumes on a worker, which fails it with the message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

if TYPE_CHECKING:
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook
    from kubernetes_asyncio.client import ApiClient, AppsV1Api

WATCH_SECONDS = 300
MAX_BACKOFF_S = 5.0


class RolloutStatusTrigger(BaseTrigger):
    """Fires once every named workload is rolled out (a :class:`TaskSuccessEvent`), one fails, or time runs out.

    :param names: the workloads to follow.
    :param namespace: their namespace.
    :param kubernetes_conn_id: the cluster's Airflow connection.
    :param kind: ``deployment`` or ``statefulset``.
    :param timeout_s: seconds to wait in all, counted from ``started_at``.
    :param started_at: when the wait started (ISO 8601); now, unless the trigger is being re-created after a
        triggerer restart.
    """

    def __init__(
        self,
        names: list[str],
        namespace: str,
        kubernetes_conn_id: str,
        kind: str = "deployment",
        timeout_s: float = 600,
        started_at: str | None = None,
    ) -> None:
        super().__init__()
        self.names = list(names)
        self.namespace = namespace
        self.kubernetes_conn_id = kubernetes_conn_id
        self.kind = kind
        self.timeout_s = timeout_s
        self.started_at = started_at or datetime.now(UTC).isoformat()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "tradeops.kubernetes.triggers.RolloutStatusTrigger",
            {
                "names": self.names,
                "namespace": self.namespace,
                "kubernetes_conn_id": self.kubernetes_conn_id,
                "kind": self.kind,
                "timeout_s": self.timeout_s,
                "started_at": self.started_at,
            },
        )

    @cached_property
    def hook(self) -> AsyncKubernetesHook:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook

        return AsyncKubernetesHook(conn_id=self.kubernetes_conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        started = datetime.fromisoformat(self.started_at)
        remaining = self.timeout_s - (datetime.now(UTC) - started).total_seconds()
        messages: dict[str, str] = {}
        async with self.hook.get_conn() as api_client:
            followers = [asyncio.create_task(self._follow(api_client, name, messages)) for name in self.names]
            try:
                done, pending = await asyncio.wait(
                    followers, timeout=max(remaining, 0), return_when=asyncio.FIRST_EXCEPTION
                )
            finally:
                for task in followers:
                    task.cancel()
            failure = next((t.exception() for t in done if t.exception() is not None), None)
        if failure is not None:
            yield TriggerEvent({"status": "failed", "message": str(failure), "messages": messages})
        elif pending:
            waiting = "; ".join(messages.get(n, f"{n}: no status yet") for n in self.names)
            yield TriggerEvent(
                {
                    "status": "timeout",
                    "message": f"timed out after {self.timeout_s:.0f}s waiting for the rollout: {waiting}",
                    "messages": messages,
                }
            )
        else:
            self.log.info("All rolled out: %s", messages)
            yield TaskSuccessEvent(
                xcoms={
                    "return_value": {
                        "status": "success",
                        "messages": messages,
                        "finished_at": datetime.now(UTC).isoformat(),
                    }
                }
            )

    def _list_and_watch(self, apps: AppsV1Api) -> Callable[..., Awaitable[Any]]:
        if self.kind == "statefulset":
            return apps.list_namespaced_stateful_set
        return apps.list_namespaced_deployment

    async def _follow(self, api_client: ApiClient, name: str, messages: dict[str, str]) -> None:
        """Returns when ``name`` is rolled out; raises RuntimeError with kubectl's message when it can't be."""
        from kubernetes_asyncio import client, watch
        from kubernetes_asyncio.client.exceptions import ApiException

        from tradeops.exceptions import RolloutFailed
        from tradeops.kubernetes.rollout import rollout_state

        kind = "StatefulSet" if self.kind == "statefulset" else "Deployment"
        listing = self._list_and_watch(client.AppsV1Api(api_client))
        selector = f"metadata.name={name}"
        backoff = 0.2

        def judge(obj: dict) -> bool:
            try:
                state = rollout_state(obj, kind)
            except RolloutFailed as err:
                raise RuntimeError(str(err)) from None
            messages[name] = state.message
            return state.done

        while True:
            try:
                body = api_client.sanitize_for_serialization(await listing(self.namespace, field_selector=selector))
                if not body["items"]:
                    raise RuntimeError(f'{self.kind} "{name}" not found in namespace "{self.namespace}"')
                if judge(body["items"][0]):
                    return
                stream = watch.Watch().stream(
                    listing,
                    self.namespace,
                    field_selector=selector,
                    resource_version=body["metadata"]["resourceVersion"],
                    timeout_seconds=WATCH_SECONDS,
                )
                async for event in stream:
                    if event["type"] == "DELETED":
                        raise RuntimeError(f'{self.kind} "{name}" was deleted while waiting for its rollout')
                    if event["type"] in ("ADDED", "MODIFIED") and judge(event["raw_object"]):
                        return
                    backoff = 0.2
                self.log.info("Watch on %s/%s ended; re-reading and watching again", self.namespace, name)
            except ApiException as err:
                if err.status in (401, 403, 404):
                    raise RuntimeError(
                        f"Kubernetes refused to watch {self.kind} {self.namespace}/{name} "
                        f"(HTTP {err.status}): {err.reason}"
                    ) from None
                self.log.warning(
                    "Watching %s/%s: HTTP %s; retrying in %.1fs", self.namespace, name, err.status, backoff
                )
            except (TimeoutError, OSError) as err:
                self.log.warning("Watching %s/%s: %s; retrying in %.1fs", self.namespace, name, err, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
