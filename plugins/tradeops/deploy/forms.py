"""The trigger form of ``blue_green_deploy``: every value is checked when the run is triggered, before it exists
(REST 400, CLI non-zero), so nothing injection-shaped ever reaches a manifest or a log line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import Param

from tradeops.incidents.forms import NO_WHITESPACE, NOT_BLANK
from tradeops.maintenance.forms import EMPTY_OR_NOT_BLANK

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig

MAX_VERSION = 64  # a tag is at most 128 characters; a release version far less


def blue_green_form(config: TradeOpsConfig) -> dict[str, Param]:
    """Version (the config's ``blue_green.version_pattern``: never ``latest``), services (deployments of the
    config), a reason, dry run by default, and break-glass with its reason for a deploy while the market is open."""
    return {
        "version": Param(
            type="string",
            pattern=config.blue_green.version_pattern,
            maxLength=MAX_VERSION,
            **NO_WHITESPACE,
            description=f"the image tag to deploy as green, matching {config.blue_green.version_pattern}",
        ),
        "services": Param(
            type="array",
            items={"type": "string", "enum": [d.name for d in config.kubernetes.deployments]},
            minItems=1,
            uniqueItems=True,
            description="the deployments (and their Services) to deploy green next to",
        ),
        "reason": Param(type="string", minLength=3, maxLength=500, pattern=NOT_BLANK, description="why (recorded)"),
        "dry_run": Param(True, type="boolean", description="only compute and show the plan; change nothing"),
        "break_glass": Param(False, type="boolean", description="deploy even while the market is open"),
        "break_glass_reason": Param(
            "",
            type="string",
            maxLength=500,
            pattern=EMPTY_OR_NOT_BLANK,
            description="required with break_glass: why this cannot wait for the market to close (logged)",
        ),
    }
