"""Running a DAG in-process with ``dag.test()`` against the sandbox: the copy it runs and the states it ends in."""

from __future__ import annotations


def runnable(dagbag, dag_id: str):
    """A copy of ``dag_id`` that ``dag.test()`` can run: no deadlines (``dag.test()`` cannot run a DAG with them,
    upstream #73428; they are tested end to end) and no retries (a failing task would wait out its retry delay).
    The session's DagBag stays intact."""
    import copy

    dag = copy.deepcopy(dagbag.get_dag(dag_id))
    dag.deadline = None
    for task in dag.tasks:
        task.retries = 0
    return dag


def states(dag_run) -> dict[str, str]:
    """Each task's final state in ``dag_run``."""
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
