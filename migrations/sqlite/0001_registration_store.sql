-- Registration store for the 9090 program (SQLite dialect; keep in step with
-- migrations/postgres/0001_registration_store.sql).
--
-- Timestamps are TEXT in UTC, fixed width RFC 3339 with microseconds:
-- 'YYYY-MM-DDTHH:MM:SS.ffffffZ'. Same text on both backends, readable in a shell, and
-- text order = time order.

-- The screened target list (PROGRAM.md §1, "Danh sách").
CREATE TABLE subscribers (
    msisdn               TEXT    PRIMARY KEY NOT NULL,          -- E.164, +84...
    plan                 TEXT    NOT NULL CHECK (plan IN ('postpaid', 'prepaid')),
    charge_per_cycle_vnd INTEGER NOT NULL CHECK (charge_per_cycle_vnd >= 0),
    list_source          TEXT    NOT NULL,                       -- 'sms' = the SMS list
    name                 TEXT,
    imported_at          TEXT    NOT NULL,
    import_batch         TEXT
);

CREATE TABLE registrations (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    msisdn        TEXT    NOT NULL UNIQUE,                        -- one place per number
    program_group INTEGER NOT NULL CHECK (program_group IN (1, 2)),
    channel       TEXT    NOT NULL CHECK (channel IN ('hotline', 'outbound_call', 'fanpage')),
    specialty     INTEGER,                                        -- NULL: not sure yet
    status        TEXT    NOT NULL CHECK (status IN ('registered', 'sent_to_vinmec',
                      'appointment_booked', 'consulted', 'surveyed', 'cancelled', 'unreachable')),
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    call_id       TEXT,
    fanpage_ref   TEXT,
    name          TEXT,
    note          TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX registrations_status ON registrations (status, created_at);

-- Cap bookkeeping: 'registrations'.used is incremented in the registering transaction
-- only while used < cap, which is what makes the cap exact.
CREATE TABLE program_counters (
    name TEXT    PRIMARY KEY NOT NULL,
    used INTEGER NOT NULL CHECK (used >= 0)
);
INSERT INTO program_counters (name, used) VALUES ('registrations', 0);

-- The list handed to Vinmec HP (PROGRAM.md §3 steps 2-3): one entry per registration.
CREATE TABLE vinmec_queue (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    registration_id     INTEGER NOT NULL UNIQUE REFERENCES registrations (id),
    status              TEXT    NOT NULL DEFAULT 'waiting'
                        CHECK (status IN ('waiting', 'claimed', 'done', 'cancelled')),
    claimed_by          TEXT,
    lease_until         TEXT,
    prescreen_note      TEXT,
    routed_specialty    INTEGER,
    appointment_at      TEXT,
    appointment_method  TEXT CHECK (appointment_method IN ('phone', 'video')),
    video_reason        TEXT,
    consultation_report TEXT,
    enqueued_at         TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL
);
CREATE INDEX vinmec_queue_status ON vinmec_queue (status, enqueued_at);

CREATE TABLE call_records (
    call_id      TEXT    PRIMARY KEY NOT NULL,
    direction    TEXT    NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    caller       TEXT,
    called       TEXT,
    started_at   TEXT    NOT NULL,
    answered_at  TEXT,
    ended_at     TEXT,
    final_status INTEGER,                                         -- SIP status code
    disposition  TEXT    NOT NULL CHECK (disposition IN ('answered', 'busy', 'no_answer',
                     'rejected', 'invalid_number', 'congested', 'failed', 'canceled')),
    end_reason   TEXT    NOT NULL DEFAULT '',
    digits       TEXT    NOT NULL DEFAULT '',
    ivr_path     TEXT    NOT NULL DEFAULT '[]',                   -- JSON array of node names
    prompts      TEXT    NOT NULL DEFAULT '[]',                   -- JSON array of prompt ids
    campaign_id  INTEGER,
    attempt_id   INTEGER
);
CREATE INDEX call_records_started ON call_records (started_at);

-- Append-only audit trail of status changes.
CREATE TABLE registration_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    registration_id INTEGER NOT NULL REFERENCES registrations (id),
    at              TEXT    NOT NULL,
    from_status     TEXT,
    to_status       TEXT    NOT NULL,
    actor           TEXT    NOT NULL,
    detail          TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX registration_events_registration ON registration_events (registration_id, id);

CREATE TRIGGER registration_events_no_update BEFORE UPDATE ON registration_events
BEGIN
    SELECT RAISE(ABORT, 'registration_events is append-only');
END;
CREATE TRIGGER registration_events_no_delete BEFORE DELETE ON registration_events
BEGIN
    SELECT RAISE(ABORT, 'registration_events is append-only');
END;
