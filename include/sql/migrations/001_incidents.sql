-- TradeOps' own state: incidents, their append-only audit trail, silences and the Slack outbox.
CREATE SCHEMA IF NOT EXISTS tradeops;

CREATE TABLE tradeops.incidents (
    id                 bigserial PRIMARY KEY,
    dedup_key          text        NOT NULL,
    source             text        NOT NULL CHECK (source IN ('deadline', 'task_failure', 'check', 'manual')),
    severity           text        NOT NULL CHECK (severity IN ('P1', 'P2', 'P3', 'P4', 'security')),
    title              text        NOT NULL,
    summary            text        NOT NULL DEFAULT '',
    dag_id             text,
    run_id             text,
    task_id            text,
    status             text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
    level              int         NOT NULL DEFAULT 0,   -- the last level notified (0: none yet)
    loop               int         NOT NULL DEFAULT 0,   -- how many times the policy has started over
    escalation_anchor  timestamptz NOT NULL DEFAULT now(), -- when level 1 of the current cycle was due
    opened_at          timestamptz NOT NULL DEFAULT now(),
    last_seen_at       timestamptz NOT NULL DEFAULT now(),
    occurrences        int         NOT NULL DEFAULT 1,
    acknowledged_at    timestamptz,
    acknowledged_by    text,
    resolved_at        timestamptz,
    resolved_by        text,
    last_update_at     timestamptz NOT NULL DEFAULT now(), -- the last status update posted
    silenced_until     timestamptz,                      -- no paging before then
    next_action_at     timestamptz,                      -- when the engine must look at it again
    slack_channel      text,                             -- the incident's thread
    slack_ts           text,
    war_room           text,
    details            jsonb       NOT NULL DEFAULT '{}'
);
-- One open (or acknowledged) incident per dedup key: concurrent openings collapse into it.
CREATE UNIQUE INDEX incidents_one_active_per_key ON tradeops.incidents (dedup_key) WHERE status <> 'resolved';
CREATE INDEX incidents_next_action ON tradeops.incidents (next_action_at) WHERE status <> 'resolved';

CREATE TABLE tradeops.incident_events (
    id           bigserial PRIMARY KEY,
    incident_id  bigint      NOT NULL REFERENCES tradeops.incidents (id),
    at           timestamptz NOT NULL DEFAULT now(),
    kind         text        NOT NULL,
    actor        text        NOT NULL DEFAULT 'tradeops',
    level        int,
    detail       jsonb       NOT NULL DEFAULT '{}',
    slack_channel text,
    slack_ts     text
);
CREATE INDEX incident_events_by_incident ON tradeops.incident_events (incident_id, id);

-- The audit trail is append-only.
CREATE FUNCTION tradeops.refuse_event_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'tradeops.incident_events is append-only';
END $$;
CREATE TRIGGER incident_events_append_only BEFORE UPDATE OR DELETE ON tradeops.incident_events
    FOR EACH ROW EXECUTE FUNCTION tradeops.refuse_event_changes();

CREATE TABLE tradeops.silences (
    id          bigserial PRIMARY KEY,
    matcher     text        NOT NULL,      -- a dedup key prefix, e.g. 'deadline:daily_health_check:'
    author      text        NOT NULL,
    reason      text        NOT NULL,
    starts_at   timestamptz NOT NULL DEFAULT now(),
    ends_at     timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);

-- Slack messages to send; a message that can't be delivered stays here and is retried, never dropped.
CREATE TABLE tradeops.outbox (
    id               bigserial PRIMARY KEY,
    incident_id      bigint      NOT NULL REFERENCES tradeops.incidents (id),
    kind             text        NOT NULL,          -- page, escalation, thread_reply, update_root, war_room
    channel          text        NOT NULL,          -- for thread replies: filled from the incident at delivery
    text             text        NOT NULL,
    blocks           jsonb,
    in_thread        boolean     NOT NULL DEFAULT false,
    level            int,
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempts         int         NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    slack_ts         text,
    last_error       text
);
CREATE INDEX outbox_pending ON tradeops.outbox (next_attempt_at, id) WHERE delivered_at IS NULL;
