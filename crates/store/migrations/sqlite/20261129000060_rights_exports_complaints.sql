-- Rights (issue 6): background exports and complaints.

-- Export jobs (P33, L7). The finished export (JSON and its HTML summary) is sealed under
-- the subject's data key, so erasing the subject crypto-shreds it too; the row goes when
-- `expires_ms` passes (the download link's expiry once ready).
CREATE TABLE export_jobs (
    id          TEXT PRIMARY KEY,
    subject     BLOB NOT NULL,
    ticket_id   BIGINT NOT NULL,
    state       TEXT NOT NULL,
    done        BIGINT NOT NULL,
    total       BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL,
    ready_ms    BIGINT,
    expires_ms  BIGINT NOT NULL,
    json_sealed BLOB,
    html_sealed BLOB,
    error       TEXT
);
CREATE INDEX export_jobs_subject ON export_jobs (subject, created_ms);
CREATE INDEX export_jobs_expires ON export_jobs (expires_ms);

-- Complaints and reports (P34, P37): each is a rights ticket (deadline, history); this
-- row adds what it is about, the operator's answer, and for an anonymous filer the keyed
-- hash of the follow-up secret that reads the answer.
CREATE TABLE complaints (
    ticket_id   BIGINT PRIMARY KEY REFERENCES rights_tickets (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    topic       TEXT NOT NULL,
    about       TEXT,
    anonymous   BIGINT NOT NULL,
    follow_up   BLOB UNIQUE,
    answer      TEXT,
    answered_ms BIGINT
);
