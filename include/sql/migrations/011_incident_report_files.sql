-- An incident's report as files (reports_dir()/incidents/incident-<id>.md and .html). A resolve makes it due in the
-- resolve's own transaction; the resolver writes it right after its commit and the escalation engine's loop writes
-- any still due (a failed write, a crash in between). Resolved again (reopened): due again, the files replaced.
CREATE TABLE tradeops.incident_reports (
    incident_id     bigint      PRIMARY KEY REFERENCES tradeops.incidents (id) ON DELETE CASCADE,
    due_since       timestamptz NOT NULL DEFAULT now(),  -- the resolve it reports on
    written_at      timestamptz,                         -- NULL: due
    attempts        integer     NOT NULL DEFAULT 0,      -- failed writes since it fell due
    last_error      text,
    next_attempt_at timestamptz NOT NULL DEFAULT now()   -- later after each failure (a full disk is not hammered)
);
CREATE INDEX incident_reports_due ON tradeops.incident_reports (next_attempt_at) WHERE written_at IS NULL;
