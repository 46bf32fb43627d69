"""The escalation engine must run from the first start: Airflow creates its DAG unpaused although every other DAG
starts paused (``dags_are_paused_at_creation``, True by default and in docker-compose.yaml), except
``incident_response``, which alerts start by themselves (it has no schedule).

This goes through Airflow's own path, not a copy of it: the DAG file as the dag-processor parses it, serialized,
then turned into its ``dag`` table row by ``airflow.dag_processing.collection`` (what the dag-processor does on
first sight of a DAG). End to end, ``tests/e2e/test_stack.py`` shows the same under the real scheduler: the engine
defers and beats with nobody unpausing it.
"""

from __future__ import annotations

ENGINE_DAG = "incident_escalation_engine"


def test_the_engine_dag_asks_to_be_unpaused_at_creation_and_keeps_it_when_serialized(dagbag):
    from airflow.serialization.serialized_objects import DagSerialization, LazyDeserializedDAG

    dag = dagbag.dags[ENGINE_DAG]
    assert dag.is_paused_upon_creation is False
    assert LazyDeserializedDAG.from_dag(dag).is_paused_upon_creation is False
    assert DagSerialization.from_dict(DagSerialization.to_dict(dag)).is_paused_upon_creation is False
    assert dag.timetable.run_immediately is True, "its first window starts at once, not at the next half hour"


def test_airflow_creates_the_engine_unpaused_while_the_other_dags_start_paused(dagbag, airflow_db):
    from airflow.configuration import conf
    from airflow.dag_processing.collection import _create_orm_dags
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session
    from sqlalchemy import delete, text

    assert conf.getboolean("core", "dags_are_paused_at_creation"), "the global default this test is about"
    with create_session() as session:
        # As on a first deploy: none of these DAGs known yet (in-process DAG tests of this worker may have added some;
        # the rollback below puts them back, and their runs' references are never checked before it).
        session.execute(text("PRAGMA defer_foreign_keys = ON"))
        session.execute(delete(DagModel).where(DagModel.dag_id.in_(list(dagbag.dags))))
        session.add(DagBundleModel(name="test-bundle"))
        session.flush()
        created = list(
            _create_orm_dags(
                "test-bundle",
                None,
                [LazyDeserializedDAG.from_dag(dag) for dag in dagbag.dags.values()],
                session=session,
            )
        )
        session.flush()
        for row in created:
            session.refresh(row)
        paused = {row.dag_id: row.is_paused for row in created}
        session.rollback()
    assert paused.pop(ENGINE_DAG) is False
    assert paused.pop("incident_response") is False, "alerts start it: a paused DAG's run never starts"
    assert paused and all(paused.values()), f"only the engine and incident_response start unpaused: {paused}"
