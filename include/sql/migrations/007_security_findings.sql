-- daily_security_check's findings, tracked from run to run by their stable id: a finding is "new" the first run
-- that sees it (again), "still open" while later runs see it, and "fixed" the first run whose check ran and no
-- longer sees it. One row per finding; a reappearing finding reopens its row.
CREATE TABLE tradeops.security_findings (
    finding_id     text        PRIMARY KEY,
    check_name     text        NOT NULL,
    status         text        NOT NULL CHECK (status IN ('open', 'fixed')),
    level          text        NOT NULL CHECK (level IN ('warn', 'fail')),
    critical       boolean     NOT NULL DEFAULT false,
    message        text        NOT NULL,
    details        jsonb       NOT NULL DEFAULT '{}',
    first_seen_at  timestamptz NOT NULL,
    first_seen_run text        NOT NULL,
    last_seen_at   timestamptz NOT NULL,
    last_seen_run  text        NOT NULL,
    fixed_at       timestamptz,
    fixed_run      text,
    incident_id    bigint      REFERENCES tradeops.incidents (id)
);
CREATE INDEX security_findings_open_idx ON tradeops.security_findings (check_name) WHERE status = 'open';
