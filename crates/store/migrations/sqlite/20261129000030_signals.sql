-- Signals (issue 5): per-subject switches (location, personalization). Not personal data
-- by itself: a random subject id, a switch name and its state.
CREATE TABLE signal_switches (
    subject    TEXT NOT NULL,
    switch     TEXT NOT NULL,
    enabled    INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (subject, switch)
);

-- Service logs (P10, P11): pseudonymized before they get here (keyed HMAC of the subject),
-- IP addresses truncated; purged by the declared retention.
CREATE TABLE service_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    pseudonym  BLOB NOT NULL,
    purpose    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    target     TEXT,
    ip_prefix  TEXT,
    carrier    TEXT,
    language   TEXT,
    at_ms      INTEGER NOT NULL,
    expires_at INTEGER
);
CREATE INDEX service_events_expires ON service_events (expires_at);
CREATE INDEX service_events_at ON service_events (at_ms);
