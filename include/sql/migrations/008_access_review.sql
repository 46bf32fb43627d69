-- monthly_access_review: each review's access matrix (what the next review diffs against), and every removal a
-- reviewer approved, with who approved it (the authenticated Airflow user) and what the API server answered.
CREATE TABLE tradeops.access_snapshots (
    run_id   text        PRIMARY KEY,
    taken_at timestamptz NOT NULL,
    entries  jsonb       NOT NULL
);
CREATE INDEX access_snapshots_taken_at_idx ON tradeops.access_snapshots (taken_at);

CREATE TABLE tradeops.access_removals (
    id          bigserial   PRIMARY KEY,
    run_id      text        NOT NULL,
    binding     text        NOT NULL,
    reason      text        NOT NULL,
    approved_by text        NOT NULL,
    applied_at  timestamptz NOT NULL,
    outcome     text        NOT NULL CHECK (outcome IN ('removed', 'already gone', 'changed since the plan')),
    UNIQUE (run_id, binding)
);
