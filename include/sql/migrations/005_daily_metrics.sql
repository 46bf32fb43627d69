-- post_market_shutdown's record of each session, one row per session (a re-run replaces its own row): what traded,
-- what was closed at the end of the day, the platform's performance figures and the day's backup and log archive.
-- The daily operations report and trend queries read it.
CREATE TABLE tradeops.daily_metrics (
    session_date      date        PRIMARY KEY,
    exchange          text        NOT NULL,
    trades            bigint      NOT NULL,
    contracts         numeric     NOT NULL,
    notional          numeric     NOT NULL,
    realized_pnl      numeric     NOT NULL,
    positions_closed  integer,                      -- NULL: the close-out did not report (it failed)
    positions_open    integer,                      -- left open after the close-out; NULL when unknown
    backup_bytes      bigint,                       -- NULL: no verified backup this session
    log_archive_bytes bigint,
    performance       jsonb       NOT NULL DEFAULT '{}',  -- /v1/performance/metrics?timeframe=1d
    run_id            text        NOT NULL,         -- the run that wrote the row last
    recorded_at       timestamptz NOT NULL DEFAULT now()
);
