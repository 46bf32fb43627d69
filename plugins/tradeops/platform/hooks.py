"""Hooks for the trading platform's HTTP API and for Alertmanager.

Connection: ``schema://host:port`` (+ ``extra.base_path``); the platform API's bearer token is the connection's
password (Airflow masks it in logs). Transient failures (connection errors, timeouts, 5xx, 429) are retried with
bounded exponential backoff that honours ``Retry-After``; a POST is retried only when it carries an
``Idempotency-Key``, so a retry can never submit an action twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from tradeops.exceptions import PlatformApiError
from tradeops.retry import backoff_delay, wait_before_retry

if TYPE_CHECKING:
    import requests
    from airflow.sdk import Connection

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
TOKEN_FIELDS = ("id", "user", "kind", "scope", "created_at", "last_used_at", "revoked_at", "active")


class JsonApiHook(BaseHook):
    """GET/POST JSON against an HTTP service described by an Airflow connection.

    :param conn_id: the Airflow connection of the service (``schema``, ``host``, ``port``, ``extra.base_path``,
        ``extra.timeout``).
    :param timeout: seconds to wait for each answer, unless the connection's ``extra.timeout`` says otherwise.
    :param retries: retries of a transient failure (a GET, or a POST with an idempotency key).
    :param backoff: the first retry's delay in seconds, doubled on each retry (at most 30 s).
    """

    conn_type = "http"
    hook_name = "TradeOps JSON API"

    def __init__(self, conn_id: str, *, timeout: float = 10.0, retries: int = 3, backoff: float = 0.5) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._session: requests.Session | None = None
        self._base_url = ""

    def _auth_headers(self, conn: Connection) -> dict[str, str]:
        return {}

    def get_conn(self) -> requests.Session:
        """A ``requests`` session for the connection, made on first use."""
        if self._session is None:
            import requests

            conn = self.get_connection(self.conn_id)
            scheme = conn.schema or "https"
            port = f":{conn.port}" if conn.port else ""
            base_path = (conn.extra_dejson.get("base_path") or "").rstrip("/")
            self._base_url = f"{scheme}://{conn.host}{port}{base_path}"
            self.timeout = float(conn.extra_dejson.get("timeout", self.timeout))
            session = requests.Session()
            session.headers.update({"Accept": "application/json", "User-Agent": "tradeops-airflow"})
            session.headers.update(self._auth_headers(conn))
            self._session = session
        return self._session

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """One call; returns the decoded JSON answer, raises :class:`~tradeops.exceptions.PlatformApiError`."""
        import requests

        session = self.get_conn()
        url = f"{self._base_url}{path}"
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        retryable = method == "GET" or idempotency_key is not None
        attempt = 0
        while True:
            attempt += 1
            try:
                response = session.request(method, url, params=params, json=json, headers=headers, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as err:
                if retryable and attempt <= self.retries:
                    self._sleep(attempt, None, f"{method} {path}: {type(err).__name__}")
                    continue
                raise PlatformApiError(f"{method} {path} on {self.conn_id}: {type(err).__name__}: {err}") from None
            if response.status_code in RETRYABLE_STATUS and retryable and attempt <= self.retries:
                self._sleep(
                    attempt, response.headers.get("Retry-After"), f"{method} {path}: HTTP {response.status_code}"
                )
                continue
            if response.status_code >= 400:
                raise PlatformApiError(
                    f"{method} {path} on {self.conn_id} answered HTTP {response.status_code}: {response.text[:300]}",
                    status=response.status_code,
                )
            return response.json()

    def _sleep(self, attempt: int, retry_after: str | None, why: str) -> None:
        delay = backoff_delay(attempt, self.backoff, cap=30.0, retry_after=retry_after)
        wait_before_retry(self.log, why, attempt, self.retries, delay)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)


class TradingPlatformHook(JsonApiHook):
    """The GrandModel trading platform API (``/v1/...``), authenticated with the connection's bearer token."""

    hook_name = "GrandModel trading platform API"

    def _auth_headers(self, conn: Connection) -> dict[str, str]:
        if not conn.password:
            raise PlatformApiError(f"connection {self.conn_id!r} has no bearer token in its password field")
        return {"Authorization": f"Bearer {conn.password}"}

    def tokens(self, **match: str | bool | None) -> list[dict[str, Any]]:
        """The users' tokens matching ``match`` (``user``, ``scope``, ``kind``, ``active``: literal), each with
        :data:`TOKEN_FIELDS` only: anything else an answer carries (a value) is dropped here, so that no secret can
        reach a log, the audit trail or Slack."""
        params = {k: str(v).lower() if isinstance(v, bool) else v for k, v in match.items() if v is not None}
        answer = self.get("/v1/auth/tokens", **params)
        return [{k: token.get(k) for k in TOKEN_FIELDS} for token in answer["tokens"]]

    def revoke_tokens(self, selector: dict[str, Any], reason: str, idempotency_key: str) -> list[str]:
        """Revoke the active tokens matching ``selector`` (``ids``, ``user``, ``scope``, or ``all``: true); the
        revoked ids. The key makes a retry (of the call or of the task) revoke nothing twice."""
        body = {**selector, "reason": reason}
        answer = self.request("POST", "/v1/auth/tokens/revoke", json=body, idempotency_key=idempotency_key)
        return list(answer["revoked"])


class AlertmanagerHook(JsonApiHook):
    """Alertmanager's v2 API."""

    hook_name = "Alertmanager"

    def active_alerts(self) -> list[dict[str, Any]]:
        """Firing alerts that nobody has silenced or inhibited."""
        return self.get("/api/v2/alerts", active="true", silenced="false", inhibited="false")
