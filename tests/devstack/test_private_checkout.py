"""A fresh machine as CI runners and cloud machines start: the checkout under a 0700 directory (what `mktemp -d` makes,
root's home on Debian) in a path with a space, run by the CI user (root there: PostgreSQL then runs as another user,
who cannot enter that directory). `make demo` starts the sandbox and Airflow from there and runs a DAG end to end.

The checkout is a `git clone` of this repository with the working tree's uncommitted changes copied on top (a clean
CI checkout has none). Its .venv is a new virtualenv that reads this one's packages through a .pth file, except
pgserver, copied into it: the PostgreSQL binaries then sit inside the 0700 directory, as after `make venv` there.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from tests.devstack.conftest import REPO

pytestmark = pytest.mark.e2e


def test_make_demo_runs_from_a_private_directory_with_a_space_in_its_path(launch):
    home = Path(tempfile.mkdtemp())  # mode 0700
    try:
        checkout = home / "a b" / "repo"
        _clone_with_working_tree(checkout)
        python = _venv_sharing_this_one(checkout)
        pgserver = subprocess.run(
            [python, "-c", "import importlib.util; print(importlib.util.find_spec('pgserver').origin)"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert pgserver.startswith(str(checkout)), pgserver
        modes = {path: stat.S_IMODE(path.stat().st_mode) for path in (home, home / "a b", checkout)}
        assert modes[home] == 0o700

        demo = launch(["make", "demo", "DEVSTACK_ARGS=--only daily_health_check --auto-ports"], "demo", cwd=checkout)
        code = demo.wait(timeout=420)
        assert code == 0, demo.stdout + demo.stderr
        assert "Demo OK" in demo.stdout and "Traceback" not in demo.stdout + demo.stderr
        assert {path: stat.S_IMODE(path.stat().st_mode) for path in modes} == modes, "permissions were loosened"
        assert demo.leftovers() == []
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _clone_with_working_tree(target: Path) -> None:
    target.parent.mkdir(parents=True)
    git = ["git", "-c", "safe.directory=*"]  # CI checkouts are often owned by another user than the one testing
    subprocess.run([*git, "clone", "--quiet", "--no-hardlinks", str(REPO), str(target)], check=True, timeout=120)
    changed = subprocess.run(
        [*git, "ls-files", "-z", "--modified", "--deleted", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    for relative in filter(None, set(changed.split("\0"))):
        source, copy = REPO / relative, target / relative
        if source.exists():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy)
        else:
            copy.unlink(missing_ok=True)


def _venv_sharing_this_one(checkout: Path) -> str:
    venv = checkout / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    shared = Path(sysconfig.get_paths()["purelib"])
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    (site / "shared-venv.pth").write_text(f"{shared}\n")
    for package in ("pgserver", "pgserver.libs"):
        shutil.copytree(shared / package, site / package, symlinks=True)
    python = venv / "bin" / "python"
    # pip's launcher for an interpreter path with a space: a shebang line cannot quote it.
    script = Path(sys.executable).with_name("airflow").read_text().split("\n", 1)[1]
    airflow = venv / "bin" / "airflow"
    airflow.write_text(f"#!/bin/sh\n'''exec' \"{python}\" \"$0\" \"$@\"\n' '''\n{script}")
    airflow.chmod(0o755)
    for stamp in (".installed-runtime", ".installed-test"):  # the packages are there: make installs nothing
        (venv / stamp).touch()
    return str(python)
