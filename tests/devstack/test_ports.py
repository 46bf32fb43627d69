"""A fixed port another program holds: the sandbox stops at once with one line; `make up`/`make demo` use free ports."""

from __future__ import annotations

import re

from devstack.__main__ import default_ports_taken
from sandbox.launcher import DEFAULT_PORTS
from tests.devstack.conftest import port_taken


def test_the_sandbox_on_its_fixed_ports_stops_at_once_naming_a_taken_one(launch, tmp_path):
    with port_taken(DEFAULT_PORTS["postgres"]):
        sandbox = launch(["sandbox", "--state-dir", str(tmp_path / "state"), "up"], "sandbox")
        assert sandbox.wait(timeout=60) == 2
    lines = sandbox.stderr.strip().splitlines()
    assert len(lines) == 1, sandbox.stderr
    assert re.fullmatch(r"sandbox: port \d+ \(\w+\) is already in use by another program; .*--auto-ports.*", lines[0])
    assert not (tmp_path / "state" / "settings.json").exists()
    assert sandbox.leftovers() == []


def test_up_and_demo_see_8080_taken():
    with port_taken(8080):
        assert default_ports_taken().get("Airflow UI") == 8080
