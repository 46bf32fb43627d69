-- The escalation engine's liveness: each engine window (one deferred `escalate` task of incident_escalation_engine,
-- identified by when it ends) records when it last woke; the health check's escalation_engine check reads the
-- newest beat. Rows older than a week are pruned by the engine itself.
CREATE TABLE tradeops.engine_heartbeats (
    window_until  timestamptz PRIMARY KEY,           -- the window's end: one row per window
    run_id        text,                              -- the engine DAG's run that started it, when known
    triggerer     text        NOT NULL,              -- host:pid of the triggerer running it (the last to beat)
    started_at    timestamptz NOT NULL DEFAULT now(),
    last_beat_at  timestamptz NOT NULL DEFAULT now(),
    beats         bigint      NOT NULL DEFAULT 1
);
CREATE INDEX engine_heartbeats_newest ON tradeops.engine_heartbeats (last_beat_at DESC);
