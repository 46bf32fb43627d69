"""The trading platform's own database, created and seeded with deterministic data.

``rows`` is the size knob: the number of ``audit_log`` rows (the biggest table); the other tables scale with it.
The demo uses the small default; benchmarks ask for millions. Data is generated server-side with
``generate_series`` and a fixed ``setseed`` so the same knob always gives the same database.

``audit_log`` and ``system_metrics`` are range-partitioned by day (no DEFAULT partition, so partitions can be
detached concurrently), with a week of partitions created ahead.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

DEFAULT_ROWS = 20_000
AUDIT_DAYS = 180
METRICS_DAYS = 60
DAYS_AHEAD = 7
SYMBOLS = ["ES", "NQ", "YM", "RTY", "CL", "GC", "ZN", "ZB", "6E", "6J", "SPY", "QQQ", "AAPL", "MSFT", "NVDA"]
ACCOUNT_ID = "GM-PRIMARY"

SCHEMA = """
CREATE TABLE accounts (
    id text PRIMARY KEY,
    name text NOT NULL,
    currency text NOT NULL DEFAULT 'USD',
    balance numeric(18, 2) NOT NULL,
    margin_used numeric(18, 2) NOT NULL,
    status text NOT NULL DEFAULT 'active',
    trading_enabled boolean NOT NULL DEFAULT true
);

CREATE TABLE users (
    id serial PRIMARY KEY,
    username text NOT NULL UNIQUE,
    email text NOT NULL,
    role text NOT NULL,
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL,
    last_login_at timestamptz
);

CREATE TABLE login_events (
    id bigserial PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    username text NOT NULL,
    source_ip inet NOT NULL,
    success boolean NOT NULL,
    failure_reason text
);
CREATE INDEX login_events_occurred_at_idx ON login_events (occurred_at);

CREATE TABLE trades (
    id bigserial PRIMARY KEY,
    trade_ts timestamptz NOT NULL,
    account text NOT NULL REFERENCES accounts (id),
    symbol text NOT NULL,
    side text NOT NULL CHECK (side IN ('buy', 'sell')),
    qty numeric(18, 4) NOT NULL,
    price numeric(18, 6) NOT NULL,
    strategy text NOT NULL
);
CREATE INDEX trades_trade_ts_idx ON trades (trade_ts);
CREATE INDEX trades_symbol_trade_ts_idx ON trades (symbol, trade_ts);
CREATE INDEX trades_strategy_idx ON trades (strategy);

CREATE TABLE positions (
    account text NOT NULL REFERENCES accounts (id),
    symbol text NOT NULL,
    qty numeric(18, 4) NOT NULL,
    avg_price numeric(18, 6) NOT NULL,
    last_price numeric(18, 6) NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (account, symbol)
);

CREATE TABLE market_data (
    symbol text NOT NULL,
    ts timestamptz NOT NULL,
    bid numeric(18, 6) NOT NULL,
    ask numeric(18, 6) NOT NULL,
    last numeric(18, 6) NOT NULL,
    volume bigint NOT NULL,
    PRIMARY KEY (symbol, ts)
);
CREATE INDEX market_data_ts_idx ON market_data (ts);

CREATE TABLE audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY,
    created_at timestamptz NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    entity text NOT NULL,
    details jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX audit_log_created_at_idx ON audit_log (created_at);

CREATE TABLE system_metrics (
    ts timestamptz NOT NULL,
    component text NOT NULL,
    metric text NOT NULL,
    value double precision NOT NULL
) PARTITION BY RANGE (ts);
CREATE INDEX system_metrics_component_metric_ts_idx ON system_metrics (component, metric, ts);
"""


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def create_daily_partitions(conn: psycopg.Connection, table: str, first: date, last: date) -> None:
    """One partition per UTC day from ``first`` to ``last`` inclusive, sent as a single batch."""
    statements = []
    day = first
    while day <= last:
        statements.append(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                sql.Identifier(partition_name(table, day)),
                sql.Identifier(table),
                sql.Literal(f"{day.isoformat()} 00:00:00+00"),
                sql.Literal(f"{(day + timedelta(days=1)).isoformat()} 00:00:00+00"),
            )
        )
        day += timedelta(days=1)
    if statements:
        conn.execute(sql.SQL(";\n").join(statements))


def create_and_seed(dsn: str, rows: int = DEFAULT_ROWS, now: datetime | None = None) -> dict[str, int]:
    """Create the schema in an empty database and fill it; returns the row count per table."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    today = now.date()
    started = time.monotonic()
    with psycopg.connect(dsn) as conn:
        conn.execute(SCHEMA)
        create_daily_partitions(
            conn, "audit_log", today - timedelta(days=AUDIT_DAYS), today + timedelta(days=DAYS_AHEAD)
        )
        create_daily_partitions(
            conn, "system_metrics", today - timedelta(days=METRICS_DAYS), today + timedelta(days=DAYS_AHEAD)
        )
        conn.execute("SELECT setseed(0.42)")
        params = {"now": now, "rows": rows, "symbols": SYMBOLS, "account": ACCOUNT_ID}
        for statement in _SEED:
            conn.execute(statement, params)
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")
        counts = {
            table: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]
            for table in (
                "accounts",
                "users",
                "login_events",
                "trades",
                "positions",
                "market_data",
                "audit_log",
                "system_metrics",
            )
        }
    counts["seconds"] = round(time.monotonic() - started, 2)
    return counts


_SEED = [
    """
    INSERT INTO accounts (id, name, balance, margin_used)
    VALUES (%(account)s, 'GrandModel primary futures account', 12500000.00, 3100000.00)
    """,
    # 40 users; a few inactive for 100+ days, one never logged in, one disabled.
    """
    INSERT INTO users (username, email, role, is_active, created_at, last_login_at)
    SELECT 'user' || lpad(n::text, 2, '0'),
           'user' || lpad(n::text, 2, '0') || '@quantnova.com',
           (ARRAY['trader', 'quant', 'ops', 'risk', 'admin'])[1 + n %% 5],
           n <> 40,
           %(now)s - interval '400 days' + n * interval '3 days',
           CASE WHEN n = 39 THEN NULL
                WHEN n > 35 THEN %(now)s - (100 + n) * interval '1 day'
                ELSE %(now)s - (n %% 7) * interval '1 day' - interval '2 hours' END
    FROM generate_series(1, 40) AS n
    """,
    """
    INSERT INTO login_events (occurred_at, username, source_ip, success, failure_reason)
    SELECT %(now)s - interval '1 hour' - random() * interval '120 days',
           'user' || lpad(u::text, 2, '0'),
           ('10.20.0.' || u)::inet,  -- each user logs in from their own workstation
           ok,
           CASE WHEN ok THEN NULL ELSE (ARRAY['bad_password', 'mfa_failed', 'locked'])[1 + (random() * 2)::int] END
    FROM (SELECT 1 + (random() * 37)::int AS u, random() > 0.04 AS ok
          FROM generate_series(1, greatest(%(rows)s / 10, 500))) AS s
    """,
    # Planted for daily_security_check (README, "The sandbox"): a brute force on user07 from one source, a source
    # spraying twelve accounts, and an admin (user04) logging in from a source never seen for them.
    """
    INSERT INTO login_events (occurred_at, username, source_ip, success, failure_reason)
    SELECT %(now)s - n * interval '4 minutes', 'user07', '45.155.205.233', false, 'bad_password'
    FROM generate_series(1, 30) AS n
    """,
    """
    INSERT INTO login_events (occurred_at, username, source_ip, success, failure_reason)
    SELECT %(now)s - n * interval '17 minutes', 'user' || lpad((9 + n)::text, 2, '0'), '185.220.101.47', false,
           'bad_password'
    FROM generate_series(1, 12) AS n
    """,
    """
    INSERT INTO login_events (occurred_at, username, source_ip, success, failure_reason)
    VALUES (%(now)s - interval '95 minutes', 'user04', '198.18.7.21', true, NULL)
    """,
    """
    INSERT INTO trades (trade_ts, account, symbol, side, qty, price, strategy)
    SELECT %(now)s - random() * interval '30 days',
           %(account)s,
           (%(symbols)s::text[])[1 + (random() * (cardinality(%(symbols)s::text[]) - 1))::int],
           CASE WHEN random() < 0.5 THEN 'buy' ELSE 'sell' END,
           round((1 + random() * 20)::numeric, 0),
           round((50 + random() * 5000)::numeric, 2),
           (ARRAY['strategic-marl', 'tactical-marl'])[1 + (random())::int]
    FROM generate_series(1, greatest(%(rows)s * 6 / 10, 100))
    """,
    """
    INSERT INTO positions (account, symbol, qty, avg_price, last_price, updated_at)
    SELECT %(account)s, symbol,
           CASE WHEN ord %% 3 = 0 THEN 0 ELSE (ord %% 7 + 1) * CASE WHEN ord %% 2 = 0 THEN -1 ELSE 1 END END,
           100 + ord * 37.5, 100 + ord * 37.5 + (ord %% 5 - 2) * 1.25, %(now)s - interval '5 minutes'
    FROM unnest(%(symbols)s::text[]) WITH ORDINALITY AS u(symbol, ord)
    """,
    """
    INSERT INTO market_data (symbol, ts, bid, ask, last, volume)
    SELECT symbol, %(now)s - step * interval '1 second', px - 0.25, px + 0.25, px, (random() * 500)::bigint
    FROM (
        SELECT symbol, step, round((100 + ord * 37.5 + random())::numeric, 2) AS px
        FROM unnest(%(symbols)s::text[]) WITH ORDINALITY AS u(symbol, ord),
             generate_series(1, greatest(%(rows)s * 4 / 10 / cardinality(%(symbols)s::text[]), 10)) AS step
    ) AS ticks
    """,
    """
    INSERT INTO audit_log (created_at, actor, action, entity, details)
    SELECT %(now)s - random() * interval '180 days',
           (ARRAY['strategic-marl', 'tactical-marl', 'risk-management', 'execution-engine', 'user07', 'ops-bot'])
               [1 + (random() * 5)::int],
           (ARRAY['order.submit', 'order.cancel', 'risk.check', 'config.read', 'login', 'position.update'])
               [1 + (random() * 5)::int],
           'order/' || n,
           jsonb_build_object('seq', n, 'latency_us', (random() * 900)::int)
    FROM generate_series(1, %(rows)s) AS n
    """,
    """
    INSERT INTO system_metrics (ts, component, metric, value)
    SELECT %(now)s - random() * interval '60 days',
           (ARRAY['strategic-marl', 'tactical-marl', 'risk-management', 'execution-engine', 'data-handler',
                  'api-gateway'])[1 + (random() * 5)::int],
           (ARRAY['cpu_pct', 'memory_pct', 'latency_ms', 'rps'])[1 + (random() * 3)::int],
           random() * 100
    FROM generate_series(1, greatest(%(rows)s * 4 / 10, 100))
    """,
]
