-- One change at a time per deployment: a lease per (namespace, deployment), held by the run changing it
-- ("<dag_id>/<run_id>"). A lease expires (a crashed run cannot hold it forever) and is renewed by its holder.
CREATE TABLE tradeops.change_locks (
    namespace    text        NOT NULL,
    deployment   text        NOT NULL,
    holder       text        NOT NULL,              -- "<dag_id>/<run_id>"
    acquired_at  timestamptz NOT NULL DEFAULT now(),  -- when this holder first took it (kept on renewal)
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (namespace, deployment)
);
CREATE INDEX change_locks_holder ON tradeops.change_locks (holder);
