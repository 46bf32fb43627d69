"""What pydantic cannot check field by field: duplicates, dangling references and inverted ranges across the
sections of ``tradeops.yaml``, each reported at the exact field that causes it."""

from __future__ import annotations

import re

from tradeops.config.model import TradeOpsConfig

Loc = tuple[str | int, ...]


def _duplicates(names: list[str]) -> dict[int, str]:
    """Index -> name for every entry whose name already appeared earlier in the list."""
    seen: set[str] = set()
    repeated = {}
    for index, name in enumerate(names):
        if name in seen:
            repeated[index] = name
        seen.add(name)
    return repeated


def consistency_errors(config: TradeOpsConfig) -> list[tuple[Loc, str]]:
    """Problems that span fields: duplicates, dangling references, inverted ranges."""
    errors: list[tuple[Loc, str]] = []
    k8s = config.kubernetes

    for index, name in _duplicates([ns.name for ns in k8s.namespaces]).items():
        errors.append((("kubernetes", "namespaces", index, "name"), f"duplicate namespace {name!r}"))
    for index, name in _duplicates([f"{d.namespace}/{d.name}" for d in k8s.deployments]).items():
        errors.append((("kubernetes", "deployments", index, "name"), f"duplicate deployment {name!r}"))

    namespaces = {ns.name for ns in k8s.namespaces}
    pattern = re.compile(k8s.allowed_image_pattern)
    for index, deployment in enumerate(k8s.deployments):
        if deployment.namespace not in namespaces:
            errors.append(
                (
                    ("kubernetes", "deployments", index, "namespace"),
                    f"namespace {deployment.namespace!r} is not declared under kubernetes.namespaces",
                )
            )
        if not pattern.fullmatch(deployment.image):
            errors.append(
                (
                    ("kubernetes", "deployments", index, "image"),
                    f"image {deployment.image!r} does not match kubernetes.allowed_image_pattern",
                )
            )
        limit = deployment.replicas.max
        if limit is not None and limit < max(deployment.replicas.market_hours, deployment.replicas.off_hours):
            errors.append(
                (
                    ("kubernetes", "deployments", index, "replicas", "max"),
                    f"max {limit} is below the deployment's own market_hours/off_hours replicas",
                )
            )

    deployment_names = {d.name for d in k8s.deployments}
    for index, name in enumerate(k8s.trading_deployments):
        if name not in deployment_names:
            errors.append((("kubernetes", "trading_deployments", index), f"unknown deployment {name!r} referenced"))

    tables = config.database.tables
    for index, name in _duplicates([t.name for t in tables]).items():
        errors.append((("database", "tables", index, "name"), f"duplicate table {name!r}"))
    for index, table in enumerate(tables):
        if (table.retention_days or table.partitioning) and not table.time_column:
            errors.append(
                (
                    ("database", "tables", index, "time_column"),
                    "retention and partitioning need the table's time_column",
                )
            )

    maintenance = config.database.maintenance
    if maintenance.xid_age_warn >= maintenance.xid_age_fail:
        errors.append((("database", "maintenance", "xid_age_warn"), "must be lower than xid_age_fail"))
    for index, name in enumerate(config.weekly_maintenance.deployments):
        if name not in deployment_names:
            errors.append((("weekly_maintenance", "deployments", index), f"unknown deployment {name!r} referenced"))

    if config.account.balance_min >= config.account.balance_max:
        errors.append((("account", "balance_min"), "must be lower than account.balance_max"))
    thresholds = config.thresholds
    for warn, fail in (("db_connections_warn_pct", "db_connections_fail_pct"), ("memory_warn_pct", "memory_fail_pct")):
        if getattr(thresholds, warn) >= getattr(thresholds, fail):
            errors.append((("thresholds", warn), f"must be lower than thresholds.{fail}"))

    for dag_id, tiers in config.deadlines.items():
        for index, name in _duplicates([tier.name for tier in tiers]).items():
            errors.append((("deadlines", dag_id, index, "name"), f"duplicate deadline tier {name!r}"))
        if dag_id not in config.schedules:
            errors.append((("deadlines", dag_id), f"{dag_id!r} has deadlines but no schedule"))

    levels = [level.level for level in config.escalation.levels]
    for index, level in _duplicates([str(n) for n in levels]).items():
        errors.append((("escalation", "levels", index, "level"), f"duplicate escalation level {level}"))
    if sorted(set(levels)) != list(range(1, len(set(levels)) + 1)):
        errors.append((("escalation", "levels"), f"levels must be numbered 1..N without gaps, got {sorted(levels)}"))
    for severity, policy in config.escalation.severities.items():
        if policy.escalate_after < policy.initial_response:
            errors.append(
                (
                    ("escalation", "severities", severity, "escalate_after"),
                    "must not be shorter than initial_response",
                )
            )
    for index, name in _duplicates([rule.name for rule in config.market_watch.rules]).items():
        errors.append((("market_watch", "rules", index, "name"), f"duplicate watch rule {name!r}"))
    return errors
