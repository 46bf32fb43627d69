"""Green's health: what the smoke checks before the switch and the soak after it look at."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradeops.deploy.bluegreen import green_name

if TYPE_CHECKING:
    from tradeops.kubernetes.hooks import KubernetesApiHook
    from tradeops.platform.hooks import TradingPlatformHook


def green_problems(hook: KubernetesApiHook, namespace: str, name: str, container: str, image: str) -> list[str]:
    """What is wrong with ``name``'s green (empty: healthy): replicas not ready, pods not ready, restarting or
    running another image."""
    green = hook.deployment(namespace, green_name(name))
    wanted = green["spec"].get("replicas", 1)
    ready = (green.get("status") or {}).get("readyReplicas", 0)
    problems = [] if ready >= wanted else [f"{ready}/{wanted} replicas ready"]
    selector = ",".join(f"{k}={v}" for k, v in green["spec"]["selector"]["matchLabels"].items())
    for pod in hook.pods(namespace, selector):
        pod_name = pod["metadata"]["name"]
        if pod["metadata"].get("deletionTimestamp"):
            continue
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if status["name"] != container:
                continue
            if status.get("image") not in (image, None):
                problems.append(f"{pod_name} runs {status.get('image')}")
            if not status.get("ready"):
                problems.append(f"{pod_name} not ready")
            if status.get("restartCount", 0):
                problems.append(f"{pod_name} restarted {status['restartCount']} times")
    return problems


def platform_problems(platform: TradingPlatformHook, names: list[str]) -> list[str]:
    """The platform's own view of the services (after the switch it is green's): any not ``healthy``."""
    components = {c["name"]: c for c in platform.get("/v1/system/status").get("components", [])}
    return [
        f"platform reports {name} {components.get(name, {}).get('status', 'missing')}"
        for name in names
        if components.get(name, {}).get("status") != "healthy"
    ]
