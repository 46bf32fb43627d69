-- The daily maintenance's size report, kept for trends: one row per relation per capture.
CREATE TABLE tradeops.relation_sizes (
    captured_at timestamptz NOT NULL,
    database text NOT NULL,
    relation text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('table', 'index')),
    table_name text NOT NULL,
    bytes bigint NOT NULL,
    row_estimate bigint,
    PRIMARY KEY (database, relation, captured_at)
);
CREATE INDEX relation_sizes_captured_at_idx ON tradeops.relation_sizes (database, captured_at);
