"""
### Monthly access review

Seed runbook: *User Access Review*. Runs on the first trading day of each month at 06:30 New York time
(`schedules.monthly_access_review`), after `daily_security_check`. A reviewer reads the report and picks what to
remove; nothing is removed without that answer.

| task | does | fails when |
|---|---|---|
| `review` | the access matrix, user activity, changes since last month, the removal plan, the report | a read fails |
| `pick_removals` | a reviewer (`access_review.approvers`) picks removals, or "Remove nothing" | - |
| `apply_removals` | deletes exactly the picked bindings, each recorded with who approved it | one changed since |

- **Access**: RoleBindings in the platform's namespaces (the config's and those labelled
  `security.namespace_label`), every ClusterRoleBinding, the roles they grant and the service accounts; as a
  subject × namespace × verbs matrix (HTML, and CSV next to it). Kubernetes' own `system:*` bindings are left out.
- **Activity**: a platform user's last successful login (`login_events`) or audited action (`audit_log`); inactive
  past `access_review.inactive_after` (90 days), disabled, or never active.
- **Changes**: against last month's stored snapshot (`tradeops.access_snapshots`), who gained or lost what; before
  the first review, the bindings created within `access_review.added_within`.
- **Plan**: delete a binding only when that takes access from nobody active: it names only inactive users, or it
  is stale (its role is gone, or every service account it names). A binding that names others too is listed to
  edit by hand.
- **Approval**: `pick_removals` offers each planned item; a dry run (`dry_run`, default
  `access_review.dry_run`) and an empty plan skip it. Past `access_review.approval_timeout` the answer is
  "Remove nothing". Each removal is deleted only if unchanged since the review read it, and recorded in
  `tradeops.access_removals` with the authenticated user who approved it.

Deadline (`deadlines.monthly_access_review`): the review not finished an hour after the close is a P3.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param

from tradeops.access.operators import ApplyRemovalsOperator, PickRemovalsOperator, ReviewAccessOperator
from tradeops.config import load_config
from tradeops.dagkit import scheduled_dag

POLICY = load_config().access_review

with scheduled_dag(
    "monthly_access_review",
    owner="security",
    description="Who can do what, who is inactive, what changed since last month; removals after approval",
    tags=["security", "access"],
    dagrun_timeout=POLICY.approval_timeout + timedelta(hours=1),
    params={"dry_run": Param(POLICY.dry_run, type="boolean", description="plan and report only; remove nothing")},
    doc_md=__doc__,
):
    review = ReviewAccessOperator(task_id="review", dry_run="{{ params.dry_run }}")
    pick = PickRemovalsOperator(
        task_id="pick_removals",
        review_task_id="review",
        approvers=POLICY.approvers,
        response_timeout=POLICY.approval_timeout,
    )
    apply = ApplyRemovalsOperator(task_id="apply_removals", review_task_id="review", pick_task_id="pick_removals")
    review >> pick >> apply
