"""The security runbook's own steps, in its order: preserve the evidence (write-once, checksummed) before anything
changes, page the security team, then, after the containment (``IsolateGatewayOperator`` and
``StopTradingOperator``, shared with the critical runbook), revoke the tokens through the platform API. Each writes
its ``runbook_step`` on the incident's trail by the run's triggering user; a token's value never reaches a log, the
trail, Slack or a file (ids only)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from tradeops.config import load_config
from tradeops.incident_response.evidence import describe, token_selector
from tradeops.incident_response.operators import CHECK_TASK, ResponsePlanOperator, RunbookStep, flag
from tradeops.kubernetes.operators import CollectDiagnosticsOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from tradeops.config import TradeOpsConfig
    from tradeops.config.model import Deployment
    from tradeops.incident_response.forensics import Verification
    from tradeops.platform.hooks import TradingPlatformHook

EVIDENCE_TASK = "security.preserve_evidence"  # in incident_response's security group


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=1, default=str).encode()


class PreserveEvidenceOperator(RunbookStep, CollectDiagnosticsOperator):
    """Preserve the evidence before any containment: the deployments' pod logs and events (bounded, as
    :class:`~tradeops.kubernetes.operators.CollectDiagnosticsOperator` reads them), the incident and its audit
    trail from the state database, and the gateways' 401/403 answers (from their access logs, and the daily counts
    ``daily_security_check`` stored), in one write-once bundle under ``<reports>/forensics/incident-<id>/`` (see
    :mod:`~tradeops.incident_response.forensics`). An intact bundle of the incident is reused (a retry, a second run:
    the first evidence is the one from before the containment) when it is the one listed on the incident, with the
    SHA-256 listed there; one that fails verification is kept as it is and a new numbered one written, the failure
    recorded. The bundle's path and SHA-256 go on the incident (trail and
    ``details.forensic_bundle``). Returns ``{bundle, sha256, members, reused, replaced, errors, truncated}``.

    :param incident_id: the incident. (templated)
    :param reuse: reuse the incident's latest bundle when it verifies (False: always a new numbered one).
    """

    template_fields: Sequence[str] = (*CollectDiagnosticsOperator.template_fields, "incident_id")
    ui_color = "#f3e3fb"

    def __init__(self, *, incident_id: int | str, reuse: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.incident_id = incident_id
        self.reuse = reuse

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.incident_response import forensics
        from tradeops.incidents.operators import triggering_user
        from tradeops.reporting.files import reports_dir

        incident_id = int(self.incident_id)
        listed = self.incidents.get(incident_id).details.get("forensic_bundle") or {}  # no such incident: raises
        directory = forensics.folder(reports_dir(), incident_id)
        previous = forensics.bundles(directory)
        latest = forensics.verify_listed(previous[-1], listed) if previous else None
        if self.reuse and latest and latest.ok:
            return self._done(context, latest, reused=True, replaced=None, collected={})
        ti = context["ti"]
        meta = {
            "incident_id": incident_id,
            "collected_by": triggering_user(context),
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
        }
        replaced = latest if latest and not latest.ok else None
        if replaced:
            meta["replaces"] = {"bundle": str(replaced.path), "problems": replaced.problems}
        files, collected = self._collect(incident_id)
        written = forensics.write(directory, files, {**meta, **collected})
        if not written.ok:
            raise AirflowFailException(f"the bundle written does not verify: {written.problems}")
        return self._done(context, written, reused=False, replaced=replaced, collected=collected)

    def _collect(self, incident_id: int) -> tuple[dict[str, bytes], dict[str, Any]]:
        from dataclasses import asdict

        from tradeops.incident_response.evidence import auth_failures

        config = load_config()
        bundle = self.collect(config)
        files = dict(bundle.files)
        files["incident/incident.json"] = _json(asdict(self.incidents.get(incident_id)))
        files["incident/trail.json"] = _json([asdict(e) for e in self.incidents.timeline(incident_id)])
        gateways = [d for d in config.kubernetes.deployments if d.role == "gateway" and d.name in self.deployments]
        for gateway in gateways:
            prefix = f"logs/{gateway.name}/"
            logs = [data.decode(errors="replace") for path, data in bundle.files.items() if path.startswith(prefix)]
            files[f"auth_failures/{gateway.name}.log"] = "".join(map(auth_failures, logs)).encode()
        files["auth_failures/daily.json"] = _json(self._stored_days(config, gateways))
        collected = {"collected_at": bundle.collected_at, "logs": bundle.logs, "errors": bundle.errors}
        return files, {**collected, "truncated": bundle.truncated}

    def _stored_days(self, config: TradeOpsConfig, gateways: list[Deployment]) -> dict[str, list[dict[str, Any]]]:
        """The gateways' 401/403 counts per day as ``daily_security_check`` stored them (the logs rotate)."""
        from dataclasses import asdict
        from datetime import UTC, datetime

        from tradeops.incidents import store
        from tradeops.security.gateway import stored_days

        today, days = datetime.now(UTC).date(), config.security.gateway.history_days
        with store.connect(self.incidents.dsn) as conn:
            return {
                key: [asdict(day) for day in stored_days(conn, key, today, days)]
                for key in (f"{g.namespace}/{g.name}" for g in gateways)
            }

    def _done(
        self,
        context: Context,
        bundle: Verification,
        *,
        reused: bool,
        replaced: Verification | None,
        collected: dict[str, Any],
    ) -> dict[str, Any]:
        from psycopg.types.json import Jsonb

        from tradeops.incidents import store
        from tradeops.incidents.operators import triggering_user

        how = "verified and reused" if reused else "written"
        summary = f"forensic bundle {bundle.path} {how}: {len(bundle.members)} members, sha256 {bundle.sha256}"
        if replaced:
            summary += f"; {replaced.path} failed verification and is kept as it is ({'; '.join(replaced.problems)})"
        listed = {"bundle": str(bundle.path), "sha256": bundle.sha256, "by": triggering_user(context)}
        with store.connect(self.incidents.dsn) as conn:
            conn.execute(
                "UPDATE tradeops.incidents SET details = details || %s WHERE id = %s",
                (Jsonb({"forensic_bundle": listed}), int(self.incident_id)),
            )
        detail: dict[str, Any] = {"summary": summary, "reused": reused}
        detail |= {"bundle": listed["bundle"], "sha256": listed["sha256"]}
        if replaced:
            detail["replaced"] = {"bundle": str(replaced.path), "problems": replaced.problems}
        self.record(context, "evidence", detail)
        self.log.info("%s", summary)
        return {
            "bundle": str(bundle.path),
            "sha256": bundle.sha256,
            "members": sorted(bundle.members),
            "reused": reused,
            "replaced": str(replaced.path) if replaced else None,
            "errors": collected.get("errors", []),
            "truncated": collected.get("truncated", False),
        }


class PageSecurityOperator(RunbookStep, BaseOperator):
    """Page the security team before any containment, through the durable outbox: the config's security channel
    (``slack.channels.security``) and the ``#`` first targets of the ``security`` severity, mentioning its ``@``
    ones, and the incident's thread; the message names the incident and its forensic bundle (or says there is none:
    run with ``trigger_rule="all_done"`` so a failed evidence step still pages; an evidence step skipped or never run,
    as in a run of another type or a refused one, skips this one) and, when ``check_incident`` says so, that this is
    a dry run. A retry queues nothing twice.
    Returns ``{channels, mentions, text, queued}``.

    :param incident_id: the incident. (templated)
    :param evidence_task: the task whose return value is the forensic bundle.
    """

    template_fields: Sequence[str] = ("incident_id",)
    ui_color = "#f3e3fb"

    def __init__(self, *, incident_id: int | str, evidence_task: str = EVIDENCE_TASK, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.incident_id = incident_id
        self.evidence_task = evidence_task

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.incident_response.evidence import page_text, security_targets
        from tradeops.incidents import messages, store
        from tradeops.incidents.models import OutboxKind

        ti = context["ti"]
        bundle = ti.xcom_pull(task_ids=self.evidence_task)
        if bundle is None:
            states = ti.get_task_states(dag_id=ti.dag_id, task_ids=[self.evidence_task], run_ids=[ti.run_id])
            evidence = states.get(ti.run_id, {}).get(self.evidence_task)
            if evidence in ("skipped", "upstream_failed"):  # not a security run, or a refused one: nobody to page
                raise AirflowSkipException(f"{self.evidence_task} {evidence}: this run pages no one")
        dry_run = bool((ti.xcom_pull(task_ids=CHECK_TASK) or {}).get("dry_run"))
        channels, mentions = security_targets(load_config())
        incident_id, queued = int(self.incident_id), []
        with store.connect(self.incidents.dsn) as conn, conn.transaction():
            incident = store.get(conn, incident_id, lock=True)
            run = f"run {ti.run_id} of {ti.dag_id}"
            text = page_text(messages.headline(incident), bundle, mentions, run, dry_run=dry_run)
            sent = {
                row["channel"]
                for row in conn.execute(
                    "SELECT channel FROM tradeops.outbox WHERE incident_id = %s AND kind = %s AND text = %s",
                    (incident_id, OutboxKind.ESCALATION.value, text),
                )
            }
            for channel in (c for c in channels if c not in sent):
                store.enqueue(conn, incident_id, OutboxKind.ESCALATION, channel, text, level=1)
                queued.append(channel)
            if queued:
                level = incident.level
                store.enqueue(conn, incident_id, OutboxKind.THREAD_REPLY, "", text, in_thread=True, level=level)
        try:
            self.incidents.outbox.deliver()
        except Exception:  # Slack down: the page stays queued and the escalation engine delivers it
            self.log.warning("Delivering the outbox failed; the security page stays queued", exc_info=True)
        summary = f"security team paged in {', '.join(channels)}" + (" (already queued)" * (not queued))
        detail = {"summary": summary, "channels": channels, "mentions": mentions}
        if bundle:
            detail |= {"bundle": bundle["bundle"], "sha256": bundle["sha256"]}
        self.record(context, "security_paged", detail)
        return {"channels": channels, "mentions": mentions, "text": text, "queued": queued}


class _TokenSelection:
    """The tokens a step selects: ``scope`` and/or ``user`` (literal), or all of them when said."""

    def _select(self, scope: str | None, user: str | None, all_tokens: bool) -> None:
        self.selector = token_selector(scope=scope, user=user, everything=all_tokens)  # refused at parse time

    def matching(self, hook: TradingPlatformHook) -> list[dict[str, Any]]:
        """The active tokens the selector matches (ids and metadata; the hook drops any value)."""
        return hook.tokens(active=True, **{k: v for k, v in self.selector.items() if k != "all"})


class RevokeTokensOperator(RunbookStep, _TokenSelection, BaseOperator):
    """Revoke the selected tokens through the platform API (``POST /v1/auth/tokens/revoke``, idempotency-keyed per
    run: a retry revokes nothing twice), then read back that none is still active (else, one missed or issued
    since, the task fails naming them, not retried: a new run revokes them). A dry run lists what would be revoked
    and changes nothing. The trail gets the ids, never a token's value. Returns ``{revoked, would_revoke,
    selector, dry_run}``.

    :param incident_id: the incident. (templated)
    :param reason: why (on the platform's revocation and the incident). (templated)
    :param scope: revoke the tokens of this scope (literal).
    :param user: revoke the tokens of this user (literal); with ``scope``, those of both.
    :param all_tokens: revoke every active token (only when asked for, alone).
    :param dry_run: list what would be revoked only (by default). (templated)
    :param platform_conn_id: the platform API's connection; default: the config's ``connections.platform_api``.
    """

    template_fields: Sequence[str] = ("incident_id", "reason", "dry_run_flag")
    ui_color = "#fbe3d6"

    def __init__(
        self,
        *,
        incident_id: int | str,
        reason: str,
        scope: str | None = None,
        user: str | None = None,
        all_tokens: bool = False,
        dry_run: bool | str = True,
        platform_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.incident_id = incident_id
        self.reason = reason
        self._select(scope, user, all_tokens)
        self.dry_run_flag = dry_run  # not ``dry_run``: a method of BaseOperator
        self.platform_conn_id = platform_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.platform.hooks import TradingPlatformHook

        ti = context["ti"]
        hook = TradingPlatformHook(self.platform_conn_id or load_config().connections.platform_api)
        what = describe(self.selector)
        ids = [t["id"] for t in self.matching(hook)]
        if flag(self.dry_run_flag):
            summary = f"dry run, nothing revoked: {len(ids)} active token(s) would be ({what})"
            self.log.info("%s: %s", summary, ", ".join(ids))
            self.record(context, "revoke_tokens", {"summary": summary, "would_revoke": ids, "dry_run": True})
            return {"revoked": [], "would_revoke": ids, "selector": self.selector, "dry_run": True}
        key = f"incident_response:{self.incident_id}:{ti.dag_id}:{ti.run_id}:{ti.task_id}"
        revoked = hook.revoke_tokens(self.selector, f"incident #{self.incident_id}: {self.reason}", key)
        left = [t["id"] for t in self.matching(hook)]
        summary = f"{len(revoked)} token(s) revoked ({what})"
        self.log.info("%s: %s", summary, ", ".join(revoked))
        if left:
            self.record(context, "revoke_tokens", {"summary": f"{summary}; still active: {left}", "revoked": revoked})
            raise AirflowFailException(f"{len(left)} token(s) still active after the revocation: {left}")
        self.record(context, "revoke_tokens", {"summary": summary + ", none left active", "revoked": revoked})
        return {"revoked": revoked, "would_revoke": ids, "selector": self.selector, "dry_run": False}


class SecurityPlanOperator(_TokenSelection, ResponsePlanOperator):
    """Read what the security runbook would do (the evidence it keeps, who it pages, the gateway Service's type,
    the trading services' replicas, the tokens the selector matches) and compute the plan; record it on the
    incident. Changes nothing. Returns ``{plan, text, dry_run, namespace, trading, gateway}``. Takes the critical
    plan's parameters (``incident_id``, ``namespace``, ``trading``, ``gateway``, ``platform_conn_id``) and:

    :param evidence: the deployments whose logs the evidence keeps.
    :param scope: the tokens' scope the revocation selects (literal).
    :param user: the tokens' user the revocation selects (literal).
    :param all_tokens: the revocation selects every active token.
    """

    def __init__(
        self,
        *,
        evidence: Sequence[str],
        scope: str | None = None,
        user: str | None = None,
        all_tokens: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.evidence = list(evidence)
        self._select(scope, user, all_tokens)

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.incident_response.evidence import render, security_plan, security_targets
        from tradeops.kubernetes.hooks import KubernetesApiHook
        from tradeops.platform.hooks import TradingPlatformHook

        config = load_config()
        cluster = KubernetesApiHook(config.connections.kubernetes)
        plan = security_plan(
            evidence=self.evidence,
            channels=security_targets(config)[0],
            gateway=self.gateway,
            gateway_type=cluster.service(self.namespace, self.gateway)["spec"].get("type"),
            replicas={name: cluster.deployment(self.namespace, name)["spec"]["replicas"] for name in self.trading},
            selector=self.selector,
            tokens=self.matching(TradingPlatformHook(self.platform_conn_id or config.connections.platform_api)),
        )
        targets = {"namespace": self.namespace, "trading": self.trading, "gateway": self.gateway}
        return self.record_plan(context, plan, render(plan), **targets)
