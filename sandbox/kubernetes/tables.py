"""Server-side ``Table`` output, which ``kubectl get`` asks for (``Accept: ...;as=Table;g=meta.k8s.io``): the same
columns a real API server prints for the kinds the runbooks look at."""

from __future__ import annotations

from datetime import UTC, datetime


def age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    seconds = int((datetime.now(UTC) - datetime.fromisoformat(timestamp.replace("Z", "+00:00"))).total_seconds())
    seconds = max(seconds, 0)
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h" if hours >= 8 or not minutes % 60 else f"{hours}h{minutes % 60}m"
    return f"{hours // 24}d"


def _deployment(o):
    s, st = o["spec"], o.get("status") or {}
    return [
        ("Ready", f"{st.get('readyReplicas', 0)}/{s.get('replicas', 0)}"),
        ("Up-to-date", st.get("updatedReplicas", 0)),
        ("Available", st.get("availableReplicas", 0)),
    ]


def _replicaset(o):
    st = o.get("status") or {}
    return [
        ("Desired", o["spec"].get("replicas", 0)),
        ("Current", st.get("replicas", 0)),
        ("Ready", st.get("readyReplicas", 0)),
    ]


def _statefulset(o):
    return [("Ready", f"{(o.get('status') or {}).get('readyReplicas', 0)}/{o['spec'].get('replicas', 0)}")]


def _pod(o):
    statuses = (o.get("status") or {}).get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    waiting = next((c["state"]["waiting"].get("reason") for c in statuses if "waiting" in c.get("state", {})), None)
    return [
        ("Ready", f"{ready}/{len(o['spec'].get('containers') or [])}"),
        ("Status", waiting or (o.get("status") or {}).get("phase", "Unknown")),
        ("Restarts", sum(c.get("restartCount", 0) for c in statuses)),
    ]


def _service(o):
    s = o["spec"]
    ingress = ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    external = ",".join(i.get("ip") or i.get("hostname", "") for i in ingress) or (
        "<pending>" if s.get("type") == "LoadBalancer" else "<none>"
    )
    ports = (
        ",".join(
            f"{p['port']}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}"
            for p in s.get("ports") or []
        )
        or "<none>"
    )
    return [
        ("Type", s.get("type")),
        ("Cluster-IP", s.get("clusterIP", "<none>")),
        ("External-IP", external),
        ("Port(s)", ports),
    ]


def _secret(o):
    return [("Type", o.get("type", "Opaque")), ("Data", len(o.get("data") or {}))]


def _namespace(o):
    return [("Status", (o.get("status") or {}).get("phase", "Active"))]


def _netpol(o):
    selector = (o.get("spec") or {}).get("podSelector") or {}
    labels = ",".join(f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items())
    return [("Pod-Selector", labels or "<none>")]


def _binding(o):
    ref = o.get("roleRef") or {}
    return [("Role", f"{ref.get('kind')}/{ref.get('name')}")]


def _event(o):
    involved = o.get("involvedObject") or {}
    return [
        ("Type", o.get("type")),
        ("Reason", o.get("reason")),
        ("Object", f"{(involved.get('kind') or '').lower()}/{involved.get('name')}"),
        ("Message", o.get("message")),
    ]


COLUMNS = {
    "Deployment": _deployment,
    "ReplicaSet": _replicaset,
    "StatefulSet": _statefulset,
    "Pod": _pod,
    "Service": _service,
    "Secret": _secret,
    "Namespace": _namespace,
    "NetworkPolicy": _netpol,
    "RoleBinding": _binding,
    "ClusterRoleBinding": _binding,
    "Event": _event,
}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def to_table(kind: str, api_version: str, items: list[dict], resource_version: str) -> dict:
    extra = COLUMNS.get(kind, lambda o: [])
    names = [name for name, _ in extra(items[0] if items else {"spec": {}})]
    columns = [{"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}]
    columns += [{"name": name, "type": "string", "format": "", "description": name, "priority": 0} for name in names]
    columns.append({"name": "Age", "type": "string", "format": "", "description": "Age", "priority": 0})
    rows = []
    for obj in items:
        meta = obj["metadata"]
        cells = [meta["name"], *[value for _, value in extra(obj)], age(meta.get("creationTimestamp"))]
        rows.append(
            {
                "cells": cells,
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta},
            }
        )
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": rows,
    }
