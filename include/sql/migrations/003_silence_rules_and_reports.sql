-- Silences that cannot mute a P1 or a security incident by accident, and can be ended early; Slack messages that
-- belong to no incident (run summaries, reports) go through the same durable outbox, once per dedup key.
ALTER TABLE tradeops.silences
    ADD COLUMN covers_critical boolean NOT NULL DEFAULT false,  -- also mutes P1 and security incidents (confirmed)
    ADD COLUMN ended_at        timestamptz,                    -- ended early, by ended_by
    ADD COLUMN ended_by        text,
    ADD CONSTRAINT silences_matcher_not_empty CHECK (matcher <> '');
-- Silences made before this migration muted every severity: say so.
UPDATE tradeops.silences SET covers_critical = true;

ALTER TABLE tradeops.outbox
    ALTER COLUMN incident_id DROP NOT NULL,
    ADD COLUMN dedup_key text,
    ADD CONSTRAINT outbox_owned CHECK (incident_id IS NOT NULL OR dedup_key IS NOT NULL);
CREATE UNIQUE INDEX outbox_dedup_key ON tradeops.outbox (dedup_key) WHERE dedup_key IS NOT NULL;
