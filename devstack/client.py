"""A small client for Airflow's REST API (v2) and the sandbox's read-back endpoints."""

from __future__ import annotations

import time
from datetime import datetime
from urllib.parse import quote

import requests

TERMINAL_RUN_STATES = {"success", "failed"}


def parse(moment: str) -> datetime:
    """A timestamp of Airflow's REST API (ISO 8601, ``Z`` or an offset)."""
    return datetime.fromisoformat(moment)


class AirflowClient:
    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.session = requests.Session()

    def health(self) -> dict | None:
        try:
            response = self.session.get(f"{self.url}/api/v2/monitor/health", timeout=5)
        except requests.RequestException:
            return None
        return response.json() if response.ok else None

    def login(self) -> None:
        """Simple auth manager with ``all_admins``: a token needs no credentials (loopback-only local stack)."""
        response = self.session.get(f"{self.url}/auth/token", timeout=10)
        response.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def _call(self, method: str, path: str, **kwargs) -> dict:
        response = self.session.request(method, f"{self.url}/api/v2{path}", timeout=60, **kwargs)
        if not response.ok:
            raise RuntimeError(f"{method} {path}: HTTP {response.status_code}: {response.text[:500]}")
        return response.json()

    def dag_ids(self) -> set[str]:
        return {dag["dag_id"] for dag in self._call("GET", "/dags", params={"limit": 1000})["dags"]}

    def dag(self, dag_id: str) -> dict:
        return self._call("GET", f"/dags/{quote(dag_id)}")

    def import_errors(self) -> list[dict]:
        return self._call("GET", "/importErrors")["import_errors"]

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self._call("PATCH", f"/dags/{quote(dag_id)}", json={"is_paused": paused})

    def pause_scheduled(self, keep: set[str]) -> list[str]:
        """Pause every unpaused DAG the scheduler would start by itself (it has a next run), except ``keep``."""
        dags = self._call("GET", "/dags", params={"limit": 1000, "paused": False})["dags"]
        paused = [d["dag_id"] for d in dags if d["next_dagrun_run_after"] and d["dag_id"] not in keep]
        for dag_id in paused:
            self.set_paused(dag_id, True)
        return paused

    def event_logs(self, dag_id: str, event: str) -> list[dict]:
        """Airflow's audit log of ``event`` for a DAG (``patch_dag``: paused or unpaused through the API or UI)."""
        return self._call("GET", "/eventLogs", params={"dag_id": dag_id, "event": event})["event_logs"]

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        run = self._call("POST", f"/dags/{quote(dag_id)}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        return self._call("GET", f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self._call("GET", f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances")["task_instances"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """Each task's state in a run, by task id."""
        return {ti["task_id"]: ti["state"] for ti in self.task_instances(dag_id, run_id)}

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict:
        return self._call("GET", f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances/{quote(task_id)}")

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value"):
        entry = self._call(
            "GET",
            f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances/{quote(task_id)}/xcomEntries/{quote(key)}",
            params={"deserialize": "true"},
        )
        return entry["value"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The task's log for one try, as text (structured lines joined)."""
        body = self._call(
            "GET",
            f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances/{quote(task_id)}/logs/{try_number}",
            params={"full_content": "true"},
        )
        lines = []
        for entry in body.get("content") or []:
            if not isinstance(entry, dict):
                lines.append(str(entry))
                continue
            lines.append(str(entry.get("event", "")))
            for error in entry.get("error_detail") or []:
                lines.append(f"{error.get('exc_type')}: {error.get('exc_value')}")
        return "\n".join(lines)

    def task_log_containing(
        self, dag_id: str, run_id: str, task_id: str, text: str, try_number: int = 1, timeout: float = 30
    ) -> str:
        """The task's log once it holds ``text``, or as it is after ``timeout`` seconds: a task's state is set
        before its process's last lines reach the log, so a log read right after the state can miss them."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.task_log(dag_id, run_id, task_id, try_number)
            if text in log or time.monotonic() > deadline:
                return log
            time.sleep(1)

    def deadlines(self, dag_id: str, run_id: str) -> list[dict]:
        """The run's deadlines, as the UI lists them (a UI endpoint: Airflow has no public one yet)."""
        response = self.session.get(f"{self.url}/ui/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/deadlines", timeout=30)
        response.raise_for_status()
        return response.json()["deadlines"]

    def dag_runs(self, dag_id: str) -> list[dict]:
        return self._call("GET", f"/dags/{quote(dag_id)}/dagRuns", params={"order_by": "-run_after"})["dag_runs"]

    def _tradeops(self, path: str) -> dict:
        response = self.session.get(f"{self.url}/tradeops{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def incidents_page(self) -> str:
        """The incidents page people read (HTML)."""
        response = self.session.get(f"{self.url}/tradeops/incidents", timeout=30)
        response.raise_for_status()
        return response.text

    def incident(self, incident_id: int) -> tuple[dict, list[dict]]:
        """One incident and its audit trail."""
        body = self._tradeops(f"/incidents/{incident_id}.json")
        return body["incident"], body["timeline"]

    def wait_for_dags(self, dag_ids: set[str], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            errors = self.import_errors()
            if errors:
                details = "\n".join(f"{e['filename']}: {e['stack_trace'][-800:]}" for e in errors)
                raise RuntimeError(f"DAG import errors:\n{details}")
            missing = dag_ids - self.dag_ids()
            if not missing:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAGs never appeared: {', '.join(sorted(missing))}")
            time.sleep(1)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            run = self.dag_run(dag_id, run_id)
            if run["state"] in TERMINAL_RUN_STATES or time.monotonic() > deadline:
                return run
            time.sleep(1)


class SandboxClient:
    """Reads back what the sandbox recorded (Slack messages) and sets its fault knobs."""

    def __init__(self, settings: dict):
        self.settings = settings

    def slack_messages(self, channel: str | None = None) -> list[dict]:
        params = {"channel": channel} if channel else None
        response = requests.get(f"{self.settings['slack']['url']}/_sandbox/messages", params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def set_interactivity(self, request_url: str) -> None:
        """Where the sandbox's Slack app sends button clicks (Slack's "Interactivity request URL")."""
        requests.put(
            f"{self.settings['slack']['url']}/_sandbox/interactivity", json={"request_url": request_url}, timeout=10
        ).raise_for_status()

    def set_alert_receiver(self, url: str, repeat: int = 1) -> None:
        """Where the sandbox's Alertmanager delivers its webhooks (a receiver's ``webhook_config.url``); ``repeat``
        sends each notification that many times, as a retry after a lost answer would."""
        requests.put(
            f"{self.settings['alertmanager']['url']}/_sandbox/receiver", json={"url": url, "repeat": repeat}, timeout=10
        ).raise_for_status()

    def click(self, message: dict, action_id: str, user: str = "oncall", sign: bool = True) -> dict:
        """Click a button of a posted message, as ``user``; returns the receiving app's status and body.
        ``sign=False`` sends the request with a wrong signature."""
        response = requests.post(
            f"{self.settings['slack']['url']}/_sandbox/click",
            timeout=60,
            json={
                "channel": message["channel"],
                "ts": message["ts"],
                "action_id": action_id,
                "user": user,
                "sign": sign,
            },
        )
        response.raise_for_status()
        return response.json()

    def _verify(self, service: str):
        return self.settings[service].get("ca_file") or True  # the Kubernetes API serves HTTPS with its own CA

    def set_faults(self, service: str, **faults) -> dict:
        response = requests.put(
            f"{self.settings[service]['url']}/_sandbox/faults", json=faults, timeout=10, verify=self._verify(service)
        )
        response.raise_for_status()
        return response.json()

    def clear_faults(self, service: str) -> None:
        requests.delete(
            f"{self.settings[service]['url']}/_sandbox/faults", timeout=10, verify=self._verify(service)
        ).raise_for_status()
