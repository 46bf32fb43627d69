"""Operators of the weekly maintenance window: the gate, the guard that abandons steps once the window has closed,
and the platform-side steps (log cleanup, certificate expiry, security scan)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

WINDOW_END_KEY = "window_end"


class EnterMaintenanceWindowOperator(BaseOperator):
    """Refuse to start outside the window of ``schedule`` (a clock anchor) or while the exchange is open, unless
    ``break_glass`` is set with a ``reason``; push the window's end for :func:`abandon_after_window`. Templated from
    the run's params, in a DAG with ``render_template_as_native_obj`` (``break_glass`` stays a boolean)."""

    template_fields: Sequence[str] = ("break_glass", "reason")
    ui_color = "#fff4d6"

    def __init__(self, *, schedule: dict, length: timedelta, exchange: str, break_glass: bool = False,
                 reason: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedule = schedule
        self.length = length
        self.exchange = exchange
        self.break_glass = break_glass
        self.reason = reason

    def execute(self, context) -> dict:
        from tradeops.calendar.window import MaintenanceWindow, WindowClosed

        if not isinstance(self.break_glass, bool):  # the DAG renders params natively: a form value is a boolean
            raise AirflowFailException(f"break_glass must be true or false, got {self.break_glass!r}")
        forced = self.break_glass
        window = MaintenanceWindow(self.schedule, self.length, self.exchange)
        try:
            admitted = window.admit(datetime.now(UTC), break_glass=forced, reason=str(self.reason))
        except WindowClosed as err:
            raise AirflowFailException(str(err)) from None
        if forced:
            self.log.warning("BREAK-GLASS maintenance: %s", self.reason)
        self.log.info("Maintenance window open until %s", admitted.end.isoformat())
        context["ti"].xcom_push(key=WINDOW_END_KEY, value=admitted.end.isoformat())
        return {"start": admitted.start.isoformat(), "end": admitted.end.isoformat(), "break_glass": forced}


def abandon_after_window(context, gate_task_id: str = "enter_window") -> None:
    """``pre_execute`` hook of every step inside the window: a step that would start after the window has closed
    is skipped (and so are the steps after it), leaving what already ran intact."""
    end = context["ti"].xcom_pull(task_ids=gate_task_id, key=WINDOW_END_KEY)
    if end is None:
        raise AirflowSkipException("the maintenance window was never entered")
    if datetime.now(UTC) >= datetime.fromisoformat(end):
        raise AirflowSkipException(f"the maintenance window closed at {end}; remaining steps abandoned")


class CertificateExpiryOperator(BaseOperator):
    """Read every TLS secret (``type=kubernetes.io/tls``) in the config's namespaces and fail when a certificate
    expires within ``min_days``. Only ``tls.crt`` is parsed; key material is never logged or returned. Pushes a
    ``check_result`` so an expiring certificate opens an incident."""

    ui_color = "#f3e8ff"

    def __init__(self, *, min_days: int, kubernetes_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.min_days = min_days
        self.kubernetes_conn_id = kubernetes_conn_id

    def execute(self, context) -> list[dict]:
        import base64

        from cryptography import x509

        from tradeops.checks.base import RESULT_KEY, CheckResult, Status
        from tradeops.config import load_config
        from tradeops.kubernetes.client import KubernetesClient

        config = load_config()
        client = KubernetesClient(self.kubernetes_conn_id or config.connections.kubernetes)
        now = datetime.now(UTC)
        found, expiring = [], []
        for namespace in (ns.name for ns in config.kubernetes.namespaces):
            for secret in client.tls_secrets(namespace):
                pem = base64.b64decode((secret.get("data") or {}).get("tls.crt", ""))
                if not pem:
                    continue
                cert = x509.load_pem_x509_certificate(pem)  # the first (leaf) certificate of the chain
                days = (cert.not_valid_after_utc - now).total_seconds() / 86400
                entry = {"secret": f"{namespace}/{secret['metadata']['name']}",
                         "subject": cert.subject.rfc4514_string(), "not_after": cert.not_valid_after_utc.isoformat(),
                         "days_left": round(days, 1)}
                found.append(entry)
                if days < self.min_days:
                    expiring.append(entry)
        for entry in found:
            self.log.info("%s: %s, %s days left", entry["secret"], entry["subject"], entry["days_left"])
        status = Status.FAIL if expiring else Status.OK
        summary = (f"{len(expiring)} of {len(found)} certificates expire within {self.min_days} days: " +
                   ", ".join(f"{e['secret']} ({e['days_left']} d)" for e in expiring) if expiring
                   else f"{len(found)} certificates valid for {self.min_days}+ days")
        context["ti"].xcom_push(key=RESULT_KEY, value=CheckResult(
            context["ti"].task_id, "TLS certificates", status, summary, {"certificates": found}).to_dict())
        if expiring:
            raise AirflowFailException(summary)
        return found


class PlatformMaintenanceOperator(BaseOperator):
    """A maintenance action the platform's API performs (``POST``): log cleanup, security scan. Idempotent per task
    run (an ``Idempotency-Key`` makes a retried POST safe); fails when the response reports ``blocking`` findings."""

    template_fields: Sequence[str] = ("payload",)
    ui_color = "#e6eefc"

    def __init__(self, *, path: str, payload: dict | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.payload = payload or {}

    def execute(self, context) -> dict:
        from tradeops.config import load_config
        from tradeops.hooks.platform import TradingPlatformHook

        config = load_config()
        ti = context["ti"]
        response = TradingPlatformHook(config.connections.platform_api).request(
            "POST", self.path, json=self.payload, idempotency_key=f"{ti.dag_id}/{ti.run_id}/{ti.task_id}")
        self.log.info("%s: %s", self.path, {k: v for k, v in response.items() if k != "details"})
        if response.get("blocking"):
            raise AirflowFailException(f"{self.path}: {len(response['blocking'])} blocking finding(s): "
                                       f"{response['blocking'][:5]}")
        return response
