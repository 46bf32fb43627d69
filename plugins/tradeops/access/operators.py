"""The monthly access review's tasks: review (read, diff, plan, report), let a reviewer pick the removals (human in
the loop), apply exactly those, each recorded with who approved it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from tradeops.incidents.mixins import WithIncidentService

if TYPE_CHECKING:
    from airflow.sdk import Context


NOTHING = "Remove nothing"


class ReviewAccessOperator(WithIncidentService, BaseOperator):
    """Read who can do what in the platform's namespaces (bindings, the roles they grant, service accounts) and the
    platform users' activity (successful logins, audited actions); diff the access matrix against the last review's
    snapshot (or, before any, the bindings created within ``access_review.added_within``); plan the removals of
    inactive users' and stale bindings; write the report (HTML, matrix as CSV) and post its summary to the security
    channel. Stores this review's snapshot for the next one, unless a dry run. Returns the review.

    :param dry_run: plan and report only, store nothing (templated: ``{{ params.dry_run }}``).
    """

    template_fields = ("dry_run_flag",)
    ui_color = "#e9d8fd"

    def __init__(self, *, dry_run: bool | str = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dry_run_flag = dry_run

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.access import report, review, store
        from tradeops.config import load_config
        from tradeops.connections import postgres_dsn
        from tradeops.kubernetes.hooks import KubernetesApiHook
        from tradeops.reporting.links import run_url
        from tradeops.security.network import platform_namespaces

        config, ti = load_config(), context["ti"]
        policy, dry_run = config.access_review, self.dry_run_flag in (True, "True", "true")
        hook = KubernetesApiHook(config.connections.kubernetes)
        namespaces = platform_namespaces(config, hook)
        rbac = hook.rbac()
        accounts = {f"{sa['metadata']['namespace']}/{sa['metadata']['name']}" for sa in hook.service_accounts()}
        users = store.user_activity(postgres_dsn(config.connections.platform_db), f"tradeops:{ti.dag_id}")
        now = datetime.now(UTC)

        entries = review.access_matrix(rbac, namespaces)
        previous = store.last_snapshot(self.incidents.dsn, ti.run_id)
        if previous is not None:
            changes, since = review.diff(previous[1], entries), f"the review of {previous[0]:%Y-%m-%d}"
        else:
            added = set(review.recently_created(review.platform_bindings(rbac, namespaces), now - policy.added_within))
            changes = {"gained": [e for e in entries if e.binding in added], "lost": []}
            since = f"{policy.added_within.days} days ago (no earlier review: by creation time)"
        inactive = review.inactive_users(users, now, policy.inactive_after)
        subjects = {e.subject for e in entries}
        removals, by_hand = review.plan_removals(rbac, namespaces, inactive, accounts)
        result: dict[str, Any] = {
            "dry_run": dry_run,
            "namespaces": namespaces,
            "subjects": sorted(subjects),
            "bindings": sorted({e.binding for e in entries}),
            "service_accounts": sorted(a for a in accounts if a.split("/", 1)[0] in namespaces),
            "entries": [e.__dict__ for e in entries],
            "inactive_with_access": {u: why for u, why in inactive.items() if f"User:{u}" in subjects},
            "inactive_without_access": sorted(u for u in inactive if f"User:{u}" not in subjects),
            "since": since,
            "gained": [e.__dict__ for e in changes["gained"]],
            "lost": [e.__dict__ for e in changes["lost"]],
            "removals": [r.to_dict() for r in removals],
            "by_hand": by_hand,
        }
        if not dry_run:
            store.save_snapshot(self.incidents.dsn, ti.run_id, now, entries)
        url = run_url(ti.dag_id, ti.run_id)
        html = report.render(config.platform.name, result, run_id=ti.run_id, run_url=url, generated_at=now)
        paths = report.write(ti.run_id, html, result["entries"])
        self.log.info("Report written to %s (matrix: %s)", paths["html"], paths["csv"])
        for removal in result["removals"]:
            self.log.info("Planned: %s", removal["label"])
        text = report.slack_summary(result, paths, url)
        self.incidents.send_report(f"summary:{ti.dag_id}:{ti.run_id}", config.slack.channels["security"], text)
        return {**result, "report": str(paths["html"]), "matrix_csv": str(paths["csv"])}


class PickRemovalsOperator(HITLOperator):
    """The reviewer picks which planned removals to apply (several at once, or "Remove nothing"), in the Airflow
    UI or through the REST API; only ``approvers`` may answer. Past ``response_timeout`` nothing is removed.
    Skipped in a dry run and when nothing is planned.

    :param review_task_id: the :class:`ReviewAccessOperator` whose plan is offered.
    :param approvers: the Airflow users who may answer.
    :param response_timeout: how long the reviewers have.
    """

    def __init__(
        self, *, review_task_id: str, approvers: list[str], response_timeout: timedelta, **kwargs: Any
    ) -> None:
        super().__init__(
            subject="Monthly access review: pick the removals to apply",
            options=[NOTHING],
            defaults=[NOTHING],
            multiple=True,
            assigned_users=[{"id": user, "name": user} for user in approvers],
            response_timeout=response_timeout,
            **kwargs,
        )
        self.review_task_id = review_task_id

    def _offer(self, context: Context) -> dict[str, Any]:
        """The options are the plan's: set when asking, and again when the answer is checked (a new process)."""
        review = context["ti"].xcom_pull(task_ids=self.review_task_id)
        self.options = [r["label"] for r in review["removals"]] + [NOTHING]
        return review

    def execute(self, context: Context) -> Any:
        review = self._offer(context)
        if review["dry_run"]:
            raise AirflowSkipException("Dry run: the plan is in the report; nothing is removed")
        if not review["removals"]:
            raise AirflowSkipException("Nothing to remove")
        lines = [f"- {r['label']}" for r in review["removals"]]
        if review["by_hand"]:
            lines += ["", "To edit by hand (not offered: the binding names others too):"]
            lines += [f"- {item}" for item in review["by_hand"]]
        self.body = "\n".join([f"Report: {review['report']}", "", *lines])
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        self._offer(context)
        return super().execute_complete(context, event)


class ApplyRemovalsOperator(WithIncidentService, BaseOperator):
    """Delete exactly the bindings the reviewer picked, each only if unchanged since the review read it (a
    resourceVersion precondition), and record each (``tradeops.access_removals``: binding, reason, the
    authenticated user who approved, outcome). A retry applies nothing twice. Posts what was removed.

    :param review_task_id: the :class:`ReviewAccessOperator` whose plan was offered.
    :param pick_task_id: the :class:`PickRemovalsOperator` that holds the answer.
    """

    ui_color = "#fed7d7"

    def __init__(self, *, review_task_id: str, pick_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.review_task_id = review_task_id
        self.pick_task_id = pick_task_id

    def execute(self, context: Context) -> list[dict[str, str]]:
        from tradeops.access import store
        from tradeops.config import load_config
        from tradeops.exceptions import KubernetesConflict, KubernetesNotFound
        from tradeops.kubernetes.hooks import KubernetesApiHook

        ti = context["ti"]
        review = ti.xcom_pull(task_ids=self.review_task_id)
        answer = ti.xcom_pull(task_ids=self.pick_task_id)
        chosen = set(answer["chosen_options"])
        responder = answer.get("responded_by_user") or {}
        approved_by = responder.get("id") or responder.get("name") or "nobody (the approval timed out)"
        if NOTHING in chosen and len(chosen) > 1:
            raise AirflowFailException(f'"{NOTHING}" was picked with removals: ambiguous, nothing removed')
        approved = [r for r in review["removals"] if r["label"] in chosen]
        if not approved:
            self.log.info("%s chose to remove nothing", approved_by)
            return []
        config = load_config()
        hook = KubernetesApiHook(config.connections.kubernetes)
        done = []
        for removal in approved:
            try:
                hook.delete_binding(removal["kind"], removal["namespace"], removal["name"], removal["resource_version"])
                outcome = "removed"
            except KubernetesNotFound:
                outcome = "already gone"  # a retry after the delete, or someone else removed it
            except KubernetesConflict:
                outcome = "changed since the plan"
            now = datetime.now(UTC)
            store.record_removal(
                self.incidents.dsn, ti.run_id, removal["id"], removal["reason"], approved_by, now, outcome
            )
            self.log.info("%s: %s (approved by %s)", removal["id"], outcome, approved_by)
            done.append({"binding": removal["id"], "outcome": outcome, "approved_by": approved_by})
        lines = [f"*Monthly access review*: {len(done)} removals approved by {approved_by}"]
        lines += [f"• {d['binding']}: {d['outcome']}" for d in done]
        self.incidents.send_report(
            f"removals:{ti.dag_id}:{ti.run_id}", config.slack.channels["security"], "\n".join(lines)
        )
        refused = [d["binding"] for d in done if d["outcome"] == "changed since the plan"]
        if refused:
            raise AirflowFailException(f"changed since the review read them, left as they are: {', '.join(refused)}")
        return done
