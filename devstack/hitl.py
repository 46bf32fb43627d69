"""Answering a human-in-the-loop task on a running stack the way a person does, through the REST API, once it is
really waiting (the end-to-end tests, the benchmarks)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from devstack.stack import LocalStack


def parked(stack: LocalStack, dag_id: str, run_id: str, task_id: str, timeout: float = 180) -> None:
    """Wait until the scheduler has handled the exit of the worker that parked the question. Airflow 3.3 races
    there: an answer that resumes the task before the scheduler reads that exit (same task key, same try) gets the
    resumed task taken for one killed externally (up_for_retry; the retry asks again). A person never answers
    within that second; a test must wait for it."""
    log = stack.airflow.home / "logs" / "scheduler.log"
    seen = f"TaskInstance Finished: dag_id={dag_id}, task_id={task_id}, run_id={run_id},"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(seen in line and "state=awaiting_input" in line for line in log.read_text().splitlines()):
            return
        time.sleep(0.5)
    raise TimeoutError(f"{task_id} of {run_id} never parked: {stack.client.task_states(dag_id, run_id)}")


def answer(stack: LocalStack, dag_id: str, run_id: str, task_id: str, options: list[str]) -> None:
    """Choose ``options`` for the parked question, as the authenticated test user (REST ``hitlDetails``)."""
    parked(stack, dag_id, run_id, task_id)
    response = stack.client.session.patch(
        f"{stack.client.url}/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances/{task_id}/-1/hitlDetails",
        json={"chosen_options": options, "params_input": {}},
        timeout=30,
    )
    if response.status_code != 200:
        raise RuntimeError(f"answering {task_id} of {run_id}: HTTP {response.status_code}: {response.text[:300]}")
