"""The environment is exactly the lock: every pinned package installed at its version, nothing else."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOLING = {"pip", "setuptools", "wheel"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, str]:
    pins = {}
    for lock in ("requirements.txt", "requirements-test.txt"):
        for line in (REPO / lock).read_text().splitlines():
            match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", line)
            if match:
                pins[canonical(match.group(1))] = match.group(2)
    return pins


def test_every_package_is_pinned():
    for lock in ("requirements.txt", "requirements-test.txt"):
        for line in (REPO / lock).read_text().splitlines():
            if line and not line.startswith((" ", "#", "-")):
                assert "==" in line, f"{lock}: {line!r} is not pinned"


def test_installed_set_is_the_locked_set():
    pins = locked()
    installed = {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    wrong = {name: (installed.get(name), version) for name, version in pins.items() if installed.get(name) != version}
    extra = sorted(set(installed) - set(pins) - TOOLING)
    assert wrong == {}, f"installed != locked (installed, locked): {wrong}"
    assert extra == [], f"installed but not in the lock: {extra}"


def test_the_lock_names_the_core_stack():
    pins = locked()
    assert pins["apache-airflow"] == "3.3.2"
    for provider in ("cncf-kubernetes", "postgres", "slack", "redis", "celery", "standard"):
        assert f"apache-airflow-providers-{provider}" in pins
    assert pins["kubernetes"].startswith("36.")
