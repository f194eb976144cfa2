-- The Vinmec scheduling queue's API (PostgreSQL dialect; keep in step with
-- migrations/sqlite/0003_vinmec_scheduling.sql). 0002 belongs to the campaigns.

ALTER TABLE vinmec_queue ADD COLUMN appointment_minutes BIGINT;
ALTER TABLE vinmec_queue ADD COLUMN consulted_at TEXT COLLATE "C";
ALTER TABLE vinmec_queue ADD COLUMN unreachable_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE vinmec_queue ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
CREATE INDEX vinmec_queue_lease ON vinmec_queue (status, lease_until);

ALTER TABLE registration_events ADD COLUMN action TEXT NOT NULL DEFAULT '';

CREATE TABLE idempotency_keys (
    principal    TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response     TEXT NOT NULL,
    created_at   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (principal, key)
);
