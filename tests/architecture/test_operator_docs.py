"""Every operator, sensor and trigger of the library documents each of its arguments with ``:param:`` (the Airflow
providers' convention), marks its templated ones "(templated)", and types ``execute``'s context."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest
from airflow.sdk import BaseOperator
from airflow.triggers.base import BaseTrigger

LIBRARY = Path(__file__).resolve().parents[2] / "plugins"


def library_classes() -> list[type]:
    found: dict[str, type] = {}
    for path in sorted((LIBRARY / "tradeops").rglob("*.py")):
        name = ".".join(path.relative_to(LIBRARY).with_suffix("").parts).removesuffix(".__init__")
        if name.endswith(("__main__", ".app", ".plugin")):  # entry points; the web app needs the api-server
            continue
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, (BaseOperator, BaseTrigger)):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return [found[name] for name in sorted(found)]


CLASSES = library_classes()


def documented_params(cls: type) -> dict[str, str]:
    """``{name: its text}`` of the ``:param name:`` lines in the class's docstring."""
    doc = inspect.getdoc(cls) or ""
    parts = re.split(r"^:param (\w+):", doc, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def own_arguments(cls: type) -> list[str]:
    init = cls.__dict__.get("__init__")
    if init is None:
        return []
    return [
        name
        for name, parameter in inspect.signature(init).parameters.items()
        if name != "self" and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)
    ]


def test_the_library_has_operators_and_triggers():
    names = {cls.__name__ for cls in CLASSES}
    assert {"CheckOperator", "RolloutStatusSensor", "RolloutStatusTrigger", "EscalationEngineTrigger"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_argument_has_a_param_line_and_templated_ones_say_so(cls):
    params = documented_params(cls)
    arguments = own_arguments(cls)
    missing = [name for name in arguments if name not in params]
    assert missing == [], f"{cls.__name__}: no ':param:' line for {missing}"
    for name in set(getattr(cls, "template_fields", ())) & set(arguments):
        assert "(templated)" in params[name], f"{cls.__name__}: say '(templated)' in ':param {name}:'"


@pytest.mark.parametrize("cls", [c for c in CLASSES if issubclass(c, BaseOperator)], ids=lambda cls: cls.__name__)
def test_execute_takes_a_typed_context(cls):
    for method in ("execute", "execute_complete", "poke"):
        function = cls.__dict__.get(method)
        if function is not None:
            annotation = inspect.signature(function).parameters["context"].annotation
            assert annotation in ("Context", "context: Context") or "Context" in str(annotation), (
                f"{cls.__name__}.{method}: annotate context as Context"
            )
