"""
### Pre-market startup

Seed runbooks: *Trading Day Startup Procedure* and *Pre-Market Startup* ("7:00 AM EST, 1 hour before market open",
"Market Open: 8:00 AM EST"). **The seed's 08:00 open is wrong: XNYS opens at 09:30 ET.** This DAG runs on every
session at `schedules.pre_market_startup` in `tradeops.yaml`, anchored to the exchange calendar (default: the open
− 60 minutes, 08:30 ET whatever the season): DST, holidays (no run) and early closes (announced in the checklist)
come from the calendar, never from a clock time. A run prepares the session open at its `run_after`, else the next
one (a manual run on a holiday prepares the next session, and says so).

| task | does | fails when |
|---|---|---|
| `trading_session` | the session it prepares, open/close in ET | no session in the calendar (early close: warns) |
| `account_ready` | **gate**: `/v1/account/status` and `/margin` | not active, trading off, margin < the config's |
| `model_files` | **gate**: `/v1/models/validation` | a model missing, its sha256 or version wrong |
| `risk_limits` | **gate**: `/v1/risk/limits` | a limit missing, extra or unlike the config's, or over |
| `cluster_matches_config` | the scaled roles' live images vs the pinned ones | drift, deployment by deployment |
| `gates` | the gates' one incident (opened, or resolved) | never: the gate tasks are red in the Airflow grid |
| `scale_market_hours` | `trading_day.scale_roles` to `market_hours` replicas | the cluster refuses |
| `rollout_market_hours` | waits for those rollouts, in the triggerer | a rollout stuck (kubectl's message), timeout |
| `agent_communication` | `/v1/agents/communication` | an agent cannot reach a peer (slow links warn) |
| `monitoring_mode` | `PUT /v1/monitoring/mode`, then reads it back | the platform reads back another mode |
| `checklist` | the start-up checklist to the ops channel | never: it always reports (`all_done`) |
| `verdict` | fails the run when any task failed | a task failed |

The checks and gates run in parallel. **Nothing is scaled up if the account, model or risk gate fails**: the scale
task needs all three; a failed gate opens one incident, `startup:pre_market_startup`, at `trading_day.gate_severity`
(P1), and the checklist says "startup FAILED — trading not started". Only when every item passed does it say
"startup complete". The checklist goes through the incidents' outbox once per session and outcome
(`startup:<session>`, `startup:<session>:failed:<items>`): a re-run that ends the same way sends nothing. Every
step is idempotent (scaling to a count already there changes nothing; the monitoring mode is set, not toggled).
Any other failed task opens the runbook's incident (`incidents.runbook_failure`).

Deadlines (`deadlines.pre_market_startup`): still running 15 minutes before the open, a P3 incident; at the open,
P1.

Measured (`bench/pre_market.py`, the real stack on 2 idle cores, 3 runs each): with pods ready after 15 s, wall
25.5 s (median) for 27.8 s of task time against a 21.2 s critical path (gate, scale, rollout, monitoring or agent
communication, checklist): **1.20x**. With pods ready after 2 s: 13.9 s against 8.2 s, 1.71x: the scheduler's
hand-off between those five dependent tasks (~1.1 s each) is fixed, so it dominates a toy-length path.
"""

from __future__ import annotations

from datetime import timedelta

from tradeops.checks.operators import CheckOperator
from tradeops.config import load_config
from tradeops.dagkit import scheduled_dag
from tradeops.kubernetes.operators import ScaleDeploymentsOperator
from tradeops.kubernetes.sensors import RolloutStatusSensor
from tradeops.trading import checks
from tradeops.trading.operators import (
    GateCheckOperator,
    SessionCheckOperator,
    SetMonitoringModeOperator,
    StartupChecklistOperator,
    StartupGatesOperator,
)

CONFIG = load_config()
GATES = (checks.AccountReady(), checks.ModelFiles(), checks.RiskLimits())
SCALED = [d for d in CONFIG.kubernetes.deployments if d.role in CONFIG.trading_day.scale_roles]
NAMESPACES = sorted({d.namespace for d in SCALED})

with scheduled_dag(
    "pre_market_startup",
    owner="trading-ops",
    dagrun_timeout=timedelta(minutes=50),
    description="Session, gates (account, models, risk), drift, scale-up, agents, monitoring; checklist to Slack",
    tags=["trading-day"],
    doc_md=__doc__,
    verdict=True,
    config=CONFIG,
):
    session = SessionCheckOperator(task_id="trading_session", check=checks.TradingSession())
    gate_checks = [GateCheckOperator(task_id=gate.name, check=gate) for gate in GATES]
    drift = CheckOperator(task_id="cluster_matches_config", check=checks.ClusterMatchesConfig())
    gates = StartupGatesOperator(task_id="gates", check_task_ids=[gate.name for gate in GATES])
    scale = ScaleDeploymentsOperator(
        task_id="scale_market_hours", deployments=[d.name for d in SCALED], profile="market_hours"
    )
    rollouts = [
        RolloutStatusSensor(
            task_id="rollout_market_hours" if len(NAMESPACES) == 1 else f"rollout_market_hours_{namespace}",
            names=[d.name for d in SCALED if d.namespace == namespace],
            namespace=namespace,
            timeout=600,
        )
        for namespace in NAMESPACES
    ]
    communication = CheckOperator(task_id="agent_communication", check=checks.AgentCommunication())
    monitoring = SetMonitoringModeOperator(
        task_id="monitoring_mode", mode=CONFIG.trading_day.monitoring_modes.market_hours
    )
    items = {
        "trading_session": "Trading session",
        **{gate.name: gate.title for gate in GATES},
        "cluster_matches_config": "Cluster matches config",
        "scale_market_hours": "Data feeds and agents at market-hours replicas",
        **{rollout.task_id: "Rollouts done" for rollout in rollouts},
        "agent_communication": "Agent communication",
        "monitoring_mode": f"Monitoring in {CONFIG.trading_day.monitoring_modes.market_hours} mode",
    }
    checklist = StartupChecklistOperator(task_id="checklist", items=items)

    gate_checks >> gates
    gate_checks >> scale >> rollouts >> communication
    rollouts >> monitoring
    [session, drift, gates, communication, monitoring] >> checklist
