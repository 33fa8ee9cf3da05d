-- Signals (issue 5): ad effectiveness and the inbox. Device information is kept as
-- encrypted personal fields (personal_fields), not here.

-- Impressions and clicks, de-identified before they get here: a keyed pseudonym of the
-- viewer (its own HMAC domain), the day only; released only as groups of at least k users.
CREATE TABLE ad_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ad_id      INTEGER NOT NULL,
    targeted   INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    user_key   BLOB NOT NULL,
    day_ms     INTEGER NOT NULL,
    expires_at INTEGER
);
CREATE INDEX ad_events_group ON ad_events (ad_id, targeted);
CREATE INDEX ad_events_user ON ad_events (user_key);
CREATE INDEX ad_events_expires ON ad_events (expires_at);

-- System messages (and personalized ones, under their own purpose) per user.
CREATE TABLE inbox_messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    subject    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    read_ms    INTEGER
);
CREATE INDEX inbox_messages_subject ON inbox_messages (subject, id);
