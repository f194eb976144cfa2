-- The Vinmec scheduling queue's API (SQLite dialect; keep in step with
-- migrations/postgres/0003_vinmec_scheduling.sql). 0002 belongs to the campaigns.

-- Queue entry: booked length, when the consultation was recorded, how often the
-- customer was unreachable, and a version bumped by every change (optimistic
-- concurrency that does not depend on the clock's resolution).
ALTER TABLE vinmec_queue ADD COLUMN appointment_minutes INTEGER;
ALTER TABLE vinmec_queue ADD COLUMN consulted_at TEXT;
ALTER TABLE vinmec_queue ADD COLUMN unreachable_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE vinmec_queue ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
CREATE INDEX vinmec_queue_lease ON vinmec_queue (status, lease_until);

-- Which queue action wrote an event ('' for events written elsewhere).
ALTER TABLE registration_events ADD COLUMN action TEXT NOT NULL DEFAULT '';

-- Idempotency-Key records: the answer of a successful API change, replayed when the
-- same caller retries with the same key and the same request.
CREATE TABLE idempotency_keys (
    principal    TEXT NOT NULL,          -- the API token's name
    key          TEXT NOT NULL,          -- the client's Idempotency-Key header
    request_hash TEXT NOT NULL,          -- SHA-256 of method, path and body
    response     TEXT NOT NULL,          -- the stored outcome (JSON)
    created_at   TEXT NOT NULL,
    PRIMARY KEY (principal, key)
);
