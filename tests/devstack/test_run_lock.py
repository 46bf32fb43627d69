"""One stack per run directory: a second `make demo`/`make up` names the running one; a killed one's children go."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import psutil
import pytest

from devstack.runlock import RunLock, StackBusy


def test_a_second_stack_in_a_run_directory_is_told_who_runs_there(tmp_path):
    busy = rf"^`make up` is already running .*\(pid {os.getpid()}, .*`make demo` again"
    with RunLock(tmp_path, "up"), pytest.raises(StackBusy, match=busy):
        RunLock(tmp_path, "demo").acquire()
    RunLock(tmp_path, "demo").acquire().release()


def test_the_next_stack_stops_what_a_killed_launcher_left_running(tmp_path):
    orphan = subprocess.Popen(["sleep", "60"], start_new_session=True)
    unrelated = subprocess.Popen(["sleep", "60"], start_new_session=True)  # its pid recorded, but another process
    children = [
        {"pid": orphan.pid, "started": psutil.Process(orphan.pid).create_time()},
        {"pid": unrelated.pid, "started": 1.0},
    ]
    (tmp_path / "stack.lock").write_text(json.dumps({"pid": 1, "command": "demo", "since": 0, "children": children}))
    try:
        with RunLock(tmp_path, "demo"):
            assert orphan.wait(timeout=30) == -signal.SIGTERM
            assert unrelated.poll() is None
    finally:
        for process in (orphan, unrelated):
            process.kill()
            process.wait()


def test_demo_while_up_runs_says_so_and_up_stops_cleanly_on_ctrl_c(launch, tmp_path):
    run_dir = str(tmp_path / "run")
    up = launch(["devstack", "up", "--auto-ports", "--run-dir", run_dir], "up")
    up.wait_for_output("sandbox ready", timeout=120)

    started = time.monotonic()
    demo = launch(["devstack", "demo", "--run-dir", run_dir], "demo")
    assert demo.wait(timeout=60) == 1
    assert time.monotonic() - started < 30
    pid = up.process.pid
    assert re.fullmatch(
        rf"make demo: `make up` is already running from this checkout \(pid {pid}, since \d\d:\d\d:\d\d, run "
        rf"directory {re.escape(run_dir)}\): stop it first \(Ctrl-C in its terminal, or `kill {pid}`\), then run "
        r"`make demo` again\n",
        demo.stderr,
    ), demo.stderr
    assert demo.leftovers(timeout=5) == []

    up.process.send_signal(signal.SIGINT)  # Ctrl-C, here while Airflow is still starting
    assert up.wait(timeout=90) == 0
    assert "Stopped." in up.stdout
    assert up.leftovers() == []
