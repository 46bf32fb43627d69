"""A manual DAG's trigger form, validated as Airflow validates it when a run is triggered (before the run exists)."""

from __future__ import annotations

import copy


def validate_form(dag, conf: dict) -> dict:
    """The form's values for ``conf``; raises ``ParamValidationError`` as the trigger would."""
    params = copy.deepcopy(dag.params)
    params.update(conf)
    return params.validate()
