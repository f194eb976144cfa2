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

-- The outbox of the optional Vinmec webhook: one row per registration, written by a
-- trigger in the registering transaction itself (so no registration is ever missed,
-- whichever channel took it, and a crash loses nothing). The API's deliverer sends
-- due rows, at least once, with exponential backoff.
CREATE TABLE webhook_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    registration_id INTEGER NOT NULL UNIQUE REFERENCES registrations (id),
    created_at      TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,
    delivered_at    TEXT,
    last_error      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (delivered_at, next_attempt_at);

CREATE TRIGGER registrations_to_webhook_outbox AFTER INSERT ON registrations
BEGIN
    INSERT INTO webhook_outbox (registration_id, created_at, next_attempt_at)
    VALUES (NEW.id, NEW.created_at, NEW.created_at);
END;
