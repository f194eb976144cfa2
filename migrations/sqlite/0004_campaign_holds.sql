-- Why a running campaign is not dialling right now (trunk not registered or
-- unreachable, outside its calling window, the program's cap reached, its dialplan
-- missing, the service stopping …), as the dialer runtime sees it: shown to
-- supervisors by `tongdai campaign show/list` (and the API). Written only when it
-- changes; the row is deleted when dialling resumes or the campaign stops running.
-- Keep in step with migrations/postgres/0004_campaign_holds.sql.

CREATE TABLE campaign_holds (
    campaign_id INTEGER PRIMARY KEY NOT NULL REFERENCES campaigns (id),
    code        TEXT    NOT NULL,   -- dialer::Hold::code(): trunk_not_registered, ...
    detail      TEXT    NOT NULL,   -- human-readable, e.g. "opens 2021-11-30T01:00:00Z"
    instance    TEXT    NOT NULL,   -- the service instance that holds it
    since       TEXT    NOT NULL
);
