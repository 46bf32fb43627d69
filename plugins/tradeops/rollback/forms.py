"""The emergency rollback's trigger form: every value is checked when the run is triggered, before it exists (REST
400, CLI non-zero exit). Who rolls back is never a field: it is the authenticated user who triggered the run."""

from __future__ import annotations

from airflow.sdk import Param

from tradeops.config import TradeOpsConfig
from tradeops.incidents.forms import NO_WHITESPACE, NOT_BLANK

PREVIOUS = "previous"  # kubectl rollout undo: the previous ReplicaSet revision of each deployment
MAX_VERSION = 64


def tag_pattern(allowed_image_pattern: str) -> str:
    """The tag part of the config's ``kubernetes.allowed_image_pattern`` (what follows the last ``:``), anchored:
    ``^...:[0-9]+\\.[0-9]+\\.[0-9]+$`` gives ``[0-9]+\\.[0-9]+\\.[0-9]+``."""
    tail = allowed_image_pattern.rsplit(":", 1)[-1].removesuffix("$")
    if not tail or "/" in tail:
        raise ValueError(f"kubernetes.allowed_image_pattern {allowed_image_pattern!r} does not end with ':<tag>'")
    return tail


def platform_namespace(config: TradeOpsConfig) -> str:
    """The trading platform's namespace: the config's first (the rollback changes deployments of that one only)."""
    return config.kubernetes.namespaces[0].name


def rollback_choices(config: TradeOpsConfig) -> list[str]:
    """The deployments a rollback may choose: those of the platform's namespace."""
    return [d.name for d in config.kubernetes.deployments if d.namespace == platform_namespace(config)]


def trading_services(config: TradeOpsConfig, namespace: str | None = None) -> list[str]:
    """The deployments that trade (roles ``trading_day.scale_roles``): stopped first, restored last; only those of
    ``namespace`` when given."""
    return [
        d.name
        for d in config.kubernetes.deployments
        if d.role in config.trading_day.scale_roles and namespace in (None, d.namespace)
    ]


def rollback_form(config: TradeOpsConfig) -> dict[str, Param]:
    """``emergency_rollback``: target, deployments, reason, confirmation, dry run, and the incident it belongs to."""
    choices = rollback_choices(config)
    return {
        "target": Param(
            type="string",
            maxLength=MAX_VERSION,
            pattern=f"^({PREVIOUS}|{tag_pattern(config.kubernetes.allowed_image_pattern)})$",
            **NO_WHITESPACE,
            description=f"the version to roll back to (an image tag such as 1.8.1; never 'latest'), or '{PREVIOUS}' "
            "for each deployment's previous revision (kubectl rollout undo)",
        ),
        "deployments": Param(
            [name for name in trading_services(config) if name in choices],
            type="array",
            items={"type": "string", "enum": choices},
            minItems=1,
            uniqueItems=True,
            description="the deployments to roll back (default: the trading services)",
        ),
        "reason": Param(
            type="string", minLength=3, maxLength=500, pattern=NOT_BLANK, description="why (in Slack and the incident)"
        ),
        "confirm": Param(
            type="boolean",
            enum=[True],
            description="true: I want trading stopped now and these deployments rolled back (there is no default)",
        ),
        "dry_run": Param(False, type="boolean", description="only compute and show the plan; change nothing"),
        "incident_id": Param(
            None, type=["null", "integer"], minimum=1, description="the incident this rollback answers (optional)"
        ),
    }
