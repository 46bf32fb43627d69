"""
### bench_market_watch_naive (benchmark only)

The seed's every-minute loop as a naive cron DAG would write it: one run per minute of the session (in production
`schedule="* 9-15 * * 1-5"` in New York time, 390 runs a session; here triggered by `bench/market_watch.py`). Each
run reads the platform's metrics once, evaluates the same rules as `market_hours_watch` with the rules' states
kept in an Airflow Variable between runs. (It opens no incidents: a transition is rare, and costs both designs
the same.)
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import DAG, Variable, task

STATE_VARIABLE = "bench_market_watch_naive_states"

with DAG(
    dag_id="bench_market_watch_naive",
    description="market_hours_watch as a naive every-minute cron DAG (benchmark only)",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["bench"],
):

    @task
    def evaluate_rules() -> list[dict]:
        from tradeops.config import load_config
        from tradeops.platform.hooks import TradingPlatformHook
        from tradeops.watch.rules import Rule, evaluate, states_from_json, states_to_json

        config = load_config()
        rules = [Rule(r.name, r.metric, r.above, r.for_, r.severity) for r in config.market_watch.rules]
        metrics = TradingPlatformHook(config.connections.platform_api).get("/v1/metrics/current")["metrics"]
        states = states_from_json(Variable.get(STATE_VARIABLE, default={}, deserialize_json=True))
        states, transitions = evaluate(rules, states, metrics, datetime.now(UTC))
        Variable.set(STATE_VARIABLE, states_to_json(states), serialize_json=True)
        return [t.to_json() for t in transitions]

    evaluate_rules()
