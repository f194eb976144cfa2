-- The Covid-19 handbook link of each registration (docs/program.md, benefit b): the
-- page `GET /s/{token}` on the handbook listener. The token is a capability (128
-- random bits, URL-safe base64), made the first time the registration's link is asked
-- for, and kept with the registration so the same link can be sent again. Opens are
-- counted here (HEAD requests and link-preview bots are not opens).
-- Keep in step with migrations/postgres/0005_handbook_links.sql.

CREATE TABLE handbook_links (
    registration_id INTEGER PRIMARY KEY NOT NULL REFERENCES registrations (id),
    token           TEXT    NOT NULL UNIQUE,
    created_at      TEXT    NOT NULL,
    first_open_at   TEXT,
    last_open_at    TEXT,
    opens           INTEGER NOT NULL DEFAULT 0
);
