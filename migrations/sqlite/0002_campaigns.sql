-- Outbound campaigns: invitation call-outs and satisfaction surveys (SQLite dialect; keep
-- in step with migrations/postgres/0002_campaigns.sql). Same conventions as 0001:
-- timestamps are fixed-width UTC text 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (text order = time
-- order), numbers are E.164 text, enums are lowercase text with CHECKs.
--
-- The exactly-once protocol (src/dialer/mod.rs, src/store/campaign.rs): an attempt row
-- with the Call-ID about to be used is inserted, and its contact marked 'dialing', in
-- the transaction that claims the contact — before the INVITE leaves. UNIQUE
-- (campaign_id, contact_id, attempt_no) and UNIQUE call_id make a second claim of the
-- same attempt impossible.

CREATE TABLE campaigns (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL UNIQUE,
    kind       TEXT    NOT NULL CHECK (kind IN ('invitation', 'survey')),
    dialplan   TEXT    NOT NULL,                                   -- [dialplan] name
    policy     TEXT    NOT NULL,             -- CampaignPolicy as TOML, validated on write
    state      TEXT    NOT NULL CHECK (state IN ('draft', 'running', 'paused', 'stopped',
                   'completed')),
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL,
    started_at TEXT,                                               -- first start
    ended_at   TEXT                                                -- stopped/completed
);

-- Who a campaign calls. 'waiting' contacts are due when not_before is NULL (never
-- dialled: list order by id) or <= now; 'dialing' ones have exactly one attempt in
-- status 'dialing'; 'done' ones are never dialled again by this campaign.
CREATE TABLE campaign_contacts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id      INTEGER NOT NULL REFERENCES campaigns (id),
    msisdn           TEXT    NOT NULL,                             -- E.164
    registration_id  INTEGER REFERENCES registrations (id),       -- surveys
    state            TEXT    NOT NULL DEFAULT 'waiting'
                     CHECK (state IN ('waiting', 'dialing', 'done')),
    dials            INTEGER NOT NULL DEFAULT 0,  -- attempt_no of the last claim
    attempts_charged INTEGER NOT NULL DEFAULT 0,  -- counted against max_attempts
    uncharged        INTEGER NOT NULL DEFAULT 0,  -- throttled/canceled retries given
    not_before       TEXT,
    last_disposition TEXT,
    last_sip_code    INTEGER,
    last_outcome     TEXT,
    done_reason      TEXT    CHECK (done_reason IN ('completed', 'rejected',
                         'invalid_number', 'opted_out', 'max_attempts', 'no_calling_window',
                         'duplicate', 'already_registered', 'already_surveyed')),
    updated_at       TEXT    NOT NULL,
    UNIQUE (campaign_id, msisdn)
);
CREATE INDEX campaign_contacts_due ON campaign_contacts (campaign_id, state, not_before, id);
CREATE INDEX campaign_contacts_msisdn ON campaign_contacts (msisdn);

-- One dial of one contact. status: 'dialing' (claimed; the INVITE may be out),
-- 'finished' (final recorded, contact moved on), 'released' (recovered after a crash
-- with no trace that the INVITE left: not charged, the contact is due again).
CREATE TABLE campaign_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id),
    contact_id  INTEGER NOT NULL REFERENCES campaign_contacts (id),
    attempt_no  INTEGER NOT NULL CHECK (attempt_no >= 1),
    call_id     TEXT    NOT NULL UNIQUE,                           -- SIP Call-ID
    msisdn      TEXT    NOT NULL,
    claimed_by  TEXT    NOT NULL,                                  -- service instance
    claimed_at  TEXT    NOT NULL,
    started_at  TEXT,        -- set just before the INVITE is handed to the transport
    answered_at TEXT,
    ended_at    TEXT,
    sip_code    INTEGER,                                           -- raw final status
    reason      TEXT,                                              -- Reason header
    disposition TEXT    CHECK (disposition IN ('answered', 'busy', 'no_answer', 'rejected',
                    'invalid_number', 'congested', 'failed', 'canceled')),
    outcome     TEXT    CHECK (outcome IN ('registered', 'already_registered',
                    'not_eligible', 'cap_full', 'registration_closed', 'not_interested',
                    'call_later', 'opted_out', 'survey_completed', 'survey_partial')),
    call_later  TEXT,                                  -- 'after:<seconds>' | 'tomorrow'
    charged     INTEGER NOT NULL DEFAULT 0 CHECK (charged IN (0, 1)),
    status      TEXT    NOT NULL DEFAULT 'dialing'
                CHECK (status IN ('dialing', 'finished', 'released')),
    resolution  TEXT    CHECK (resolution IN ('final', 'recovered_record',
                    'recovered_outcome', 'recovered_no_trace', 'recovered_ambiguous')),
    UNIQUE (campaign_id, contact_id, attempt_no)
);
CREATE INDEX campaign_attempts_status ON campaign_attempts (status, claimed_by);
CREATE INDEX campaign_attempts_campaign ON campaign_attempts (campaign_id, status);

-- Subscribers never to be called again, by any campaign.
CREATE TABLE do_not_call (
    msisdn      TEXT    PRIMARY KEY NOT NULL,                      -- E.164
    source      TEXT    NOT NULL CHECK (source IN ('keypad', 'import', 'supervisor')),
    at          TEXT    NOT NULL,
    campaign_id INTEGER,                                           -- keypad opt-outs
    attempt_id  INTEGER,
    note        TEXT    NOT NULL DEFAULT ''
);

-- Survey answers as pressed; a partial survey keeps what was given.
CREATE TABLE survey_answers (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    registration_id INTEGER NOT NULL REFERENCES registrations (id),
    attempt_id      INTEGER NOT NULL REFERENCES campaign_attempts (id),
    question        TEXT    NOT NULL CHECK (question IN ('satisfaction', 'resolved',
                        'recommend')),
    value           INTEGER NOT NULL,
    at              TEXT    NOT NULL,
    UNIQUE (registration_id, attempt_id, question)
);
CREATE INDEX survey_answers_attempt ON survey_answers (attempt_id);
