"""daily_security_check's work on the sandbox, and how it grows with 10x the secrets, bindings and log lines.

Two fresh sandboxes: the seeded one (1x), and one with ten times the TLS secrets and RBAC bindings (made through the
API with kubectl), ten times the pod log lines (``TRADEOPS_SANDBOX_LOG_LINES``) and ten times the rows (so
``login_events`` too). In each, every check of the DAG runs (collect and evaluate, as its task does) ``--runs``
times, then the whole DAG runs ``--runs`` times in-process (``dag.test()``: every task in turn, with a SQLite
metadata database, findings tracked and incidents opened in the sandbox's state database; a failed check's second
look is immediate, ``incidents.recheck_after: 0s``, as the pause is the same at any size). The table gives each
check's median, their sum, and the DAG's median wall time.

Target: linear (10x the objects costs at most 10x) and under 2 minutes at 10x.

    python bench/security_check.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]
HOME = Path(tempfile.mkdtemp(prefix="bench-security-airflow-"))
CONFIG = HOME / "tradeops.yaml"
CONFIG.write_text(f'extends: "{REPO / "include" / "config" / "tradeops.yaml"}"\nincidents:\n  recheck_after: 0s\n')
os.environ.update(  # before Airflow is imported: a private metadata database for dag.test()
    {
        "AIRFLOW_HOME": str(HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "TRADEOPS_REPORTS_DIR": str(HOME / "reports"),
        "TRADEOPS_CONFIG": str(CONFIG),
    }
)

from devstack.stack import start_sandbox  # noqa: E402
from sandbox.connections import connections_in_environment  # noqa: E402
from sandbox.kubernetes.tls import self_signed_certificate  # noqa: E402
from tradeops.config import load_config  # noqa: E402

KUBECTL = str(Path(sys.executable).parent / "kubectl")


def grow(kubeconfig: str, factor: int) -> dict[str, int]:
    """Add (factor - 1) times the seeded TLS secrets and bindings, through the API."""
    import base64
    import json

    env = {**os.environ, "KUBECONFIG": kubeconfig}

    def kubectl(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run([KUBECTL, "--context", "admin", *args], input=stdin, text=True, capture_output=True,
                              env=env)  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr}")
        return done.stdout

    secrets = json.loads(kubectl("get", "secrets", "-A", "--field-selector=type=kubernetes.io/tls", "-o", "json"))
    bindings = json.loads(kubectl("get", "rolebindings,clusterrolebindings", "-A", "-o", "json"))
    docs = []
    for i in range((factor - 1) * len(secrets["items"])):
        pem, key = self_signed_certificate(f"svc{i}.grandmodel.quantnova.com", 60 + i, valid_for=1)
        docs.append({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                     "metadata": {"name": f"bench-{i}-tls", "namespace": "grandmodel"},
                     "data": {"tls.crt": base64.b64encode(pem.encode()).decode(),
                              "tls.key": base64.b64encode(key.encode()).decode()}})  # fmt: skip
    monitoring = {"kind": "ServiceAccount", "name": "monitoring", "namespace": "grandmodel"}
    for i in range((factor - 1) * len(bindings["items"])):
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                     "metadata": {"name": f"bench-view-{i}", "namespace": "grandmodel"},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                     "subjects": [monitoring]})  # fmt: skip
    kubectl(
        "create", "--validate=false", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})
    )
    return {"secrets": len(secrets["items"]) * factor, "bindings": len(bindings["items"]) * factor}


def dag_wall_times(runs: int) -> list[float]:
    import copy

    from airflow.dag_processing.dagbag import DagBag

    dag = copy.deepcopy(DagBag(dag_folder=str(REPO / "dags")).get_dag("daily_security_check"))
    dag.deadline = None  # dag.test() cannot run a DAG with deadlines (upstream #73428)
    for task in dag.tasks:
        task.retries = 0
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        dag.test()
        out.append(time.perf_counter() - started)
    return out


def measure(factor: int, runs: int) -> tuple[dict[str, float], dict[str, int]]:
    config = load_config()
    sys.path.insert(0, str(REPO / "dags"))
    from daily_security_check import CHECKS

    with tempfile.TemporaryDirectory(prefix="bench-security-") as tmp:
        state = Path(tmp)
        rows = str(20_000 * factor)
        extra = {"TRADEOPS_SANDBOX_LOG_LINES": str(400 * factor)}
        child, settings = start_sandbox(state, state / "sandbox.log", "--auto-ports", "--rows", rows, extra_env=extra)
        try:
            sizes = {"log lines per pod": 400 * factor, "audit_log rows": int(rows)}
            if factor > 1:
                sizes |= grow(settings["kubernetes"]["kubeconfig"], factor)
            times: dict[str, list[float]] = {}
            with connections_in_environment(settings, config):
                for _ in range(runs):
                    for check in CHECKS:
                        started = time.perf_counter()
                        check.run(config)
                        times.setdefault(check.name, []).append(time.perf_counter() - started)
                from tradeops.incidents import store

                store.migrate(settings["postgres"]["state_dsn"])
                times["DAG wall time"] = dag_wall_times(runs)
            return {name: statistics.median(t) for name, t in times.items()}, sizes
        finally:
            child.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    migrated = subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], capture_output=True)
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    base, base_sizes = measure(1, args.runs)
    big, big_sizes = measure(10, args.runs)
    print(f"sizes 1x: {base_sizes}\nsizes 10x: {big_sizes}\n")
    print(f"{'check':<22} {'1x (s)':>8} {'10x (s)':>8} {'ratio':>6}")
    checks = [name for name in base if name != "DAG wall time"]
    for name in checks:
        print(f"{name:<22} {base[name]:>8.2f} {big[name]:>8.2f} {big[name] / base[name]:>6.1f}")
    total, total_big = sum(base[n] for n in checks), sum(big[n] for n in checks)
    print(f"{'all checks (sum)':<22} {total:>8.2f} {total_big:>8.2f} {total_big / total:>6.1f}")
    wall, wall_big = base["DAG wall time"], big["DAG wall time"]
    print(f"{'DAG wall time':<22} {wall:>8.2f} {wall_big:>8.2f} {wall_big / wall:>6.1f}")
    linear = all(big[n] <= 10 * base[n] for n in base)
    fast = wall_big < 120
    print(f"\ntarget: linear {'met' if linear else 'MISSED'}; the DAG under 2 min at 10x {'met' if fast else 'MISSED'}")
    return 0 if linear and fast else 1


if __name__ == "__main__":
    sys.exit(main())
