-- Alertmanager's alerts as incidents (source 'alert'), and the last state each alert fingerprint was delivered in:
-- a redelivery (Alertmanager retries, or the same group notified again) changes nothing.
ALTER TABLE tradeops.incidents DROP CONSTRAINT incidents_source_check;
ALTER TABLE tradeops.incidents ADD CONSTRAINT incidents_source_check
    CHECK (source IN ('deadline', 'task_failure', 'check', 'manual', 'alert'));

CREATE TABLE tradeops.alert_states (
    fingerprint text        PRIMARY KEY,
    group_key   text        NOT NULL,
    alertname   text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('firing', 'resolved')),
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz,
    incident_id bigint      REFERENCES tradeops.incidents (id),
    updated_at  timestamptz NOT NULL
);
