-- Incidents (issue 7, P25, L11) and partners (P16, P29, P30, P32, L1).
--
-- An incident holds what its notices must say (L11): cause, categories affected, possible
-- harm, remedies, what users can do, contact; and when it was detected and reported to
-- the regulator (the 72-hour alarm). Its timeline is append-only. Categories and stores
-- are JSON arrays of declared keys; no column holds personal data.
CREATE TABLE incidents (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    title                 TEXT NOT NULL,
    cause                 TEXT NOT NULL,
    categories            TEXT NOT NULL,
    stores                TEXT NOT NULL,
    possible_harm         TEXT NOT NULL,
    remedies              TEXT NOT NULL,
    user_actions          TEXT NOT NULL,
    contact               TEXT NOT NULL,
    detected_ms           BIGINT NOT NULL,
    created_ms            BIGINT NOT NULL,
    regulator_reported_ms BIGINT,
    regulator_reference   TEXT
);
CREATE INDEX incidents_unreported ON incidents (regulator_reported_ms, detected_ms);

CREATE TABLE incident_timeline (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    at_ms       BIGINT NOT NULL,
    action      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX incident_timeline_incident ON incident_timeline (incident_id, seq);
CREATE TRIGGER incident_timeline_append_only_u BEFORE UPDATE ON incident_timeline
BEGIN SELECT RAISE(ABORT, 'the incident timeline is append-only'); END;
CREATE TRIGGER incident_timeline_append_only_d BEFORE DELETE ON incident_timeline
BEGIN SELECT RAISE(ABORT, 'the incident timeline is append-only'); END;

-- Who was told individually, so a repeated notification tells nobody twice.
CREATE TABLE incident_notices (
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    subject     TEXT NOT NULL,
    message_id  BIGINT NOT NULL,
    notified_ms BIGINT NOT NULL,
    PRIMARY KEY (incident_id, subject)
);
CREATE INDEX incident_notices_subject ON incident_notices (subject);

-- Public announcements, when individual notice is impractical (P25, P18, P22).
CREATE TABLE announcements (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id  BIGINT REFERENCES incidents (id),
    title        TEXT NOT NULL,
    body         TEXT NOT NULL,
    published_ms BIGINT NOT NULL
);

-- Every share with a partner, and every public disclosure (partner `public`) (P29, P30,
-- P32): what was sent (field names, never values), what was stripped, on which basis.
CREATE TABLE partner_shares (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    subject          TEXT NOT NULL,
    partner          TEXT NOT NULL,
    purpose          TEXT,
    basis            TEXT NOT NULL,
    exception_ref    TEXT,
    exception_reason TEXT,
    fields           TEXT NOT NULL,
    stripped         TEXT NOT NULL,
    policy_hash      TEXT NOT NULL,
    actor            TEXT NOT NULL,
    status           TEXT NOT NULL,
    at_ms            BIGINT NOT NULL
);
CREATE INDEX partner_shares_subject ON partner_shares (subject, id);

-- Data received from third parties (P16): the source and its consent commitment; the
-- values themselves are personal fields, encrypted under the subject's key.
CREATE TABLE inbound_records (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    subject            TEXT NOT NULL,
    source             TEXT NOT NULL,
    consent_commitment TEXT NOT NULL,
    purpose            TEXT NOT NULL,
    received_ms        BIGINT NOT NULL
);
CREATE INDEX inbound_records_subject ON inbound_records (subject, id);

CREATE TABLE inbound_fields (
    record_id    BIGINT NOT NULL REFERENCES inbound_records (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    stored_as    TEXT NOT NULL,
    category     TEXT NOT NULL,
    sensitive    BOOLEAN NOT NULL,
    confirmed_ms BIGINT,
    PRIMARY KEY (record_id, name)
);
