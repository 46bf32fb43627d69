"""`make demo` after a killed one (a closed terminal, SIGKILL): it works, with 8080 taken, and nothing is left."""

from __future__ import annotations

import os
import re
import signal

import pytest

from tests.devstack.conftest import port_taken

pytestmark = pytest.mark.e2e

ONE_DAG = ["--only", "daily_health_check"]


def test_a_demo_after_a_killed_one_succeeds_and_leaves_nothing_running(launch, tmp_path):
    run_dir = str(tmp_path / "run")
    with port_taken(8080):
        first = launch(["devstack", "demo", *ONE_DAG, "--run-dir", run_dir], "first")
        first.wait_for_output("Starting Airflow", timeout=180)
        os.kill(first.process.pid, signal.SIGKILL)  # the launcher only, as a closed terminal leaves its children
        first.process.wait()

        second = launch(["devstack", "demo", *ONE_DAG, "--run-dir", run_dir], "second")
        code = second.wait(timeout=420)
    assert code == 0, second.stdout + second.stderr
    # 8080, or a port of the sandbox's if another stack holds one: every port then becomes a free one.
    assert re.search(r"^Port \d+ \(.+\) is in use by another program: using free ports instead", second.stdout, re.M)
    assert "daily_health_check" in second.stdout and "Demo OK" in second.stdout
    assert "Traceback" not in second.stdout + second.stderr
    assert first.leftovers() == []
    assert second.leftovers() == []
