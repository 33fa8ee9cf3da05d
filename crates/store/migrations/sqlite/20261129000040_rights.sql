-- Rights tickets (issue 6): every request a user makes about their data, with its
-- deadline and the history of its status.
CREATE TABLE rights_tickets (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    subject         BLOB NOT NULL,
    kind            TEXT NOT NULL,
    status          TEXT NOT NULL,
    detail          TEXT NOT NULL,
    created_ms      BIGINT NOT NULL,
    due_ms          BIGINT NOT NULL,
    closed_ms       BIGINT,
    refusal_reason  TEXT,
    refusal_basis   TEXT,
    complaint_route TEXT
);
CREATE INDEX rights_tickets_subject ON rights_tickets (subject, id);
CREATE INDEX rights_tickets_open_due ON rights_tickets (closed_ms, due_ms);

CREATE TABLE rights_ticket_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id BIGINT NOT NULL REFERENCES rights_tickets (id) ON DELETE CASCADE,
    status    TEXT NOT NULL,
    note      TEXT NOT NULL,
    at_ms     BIGINT NOT NULL
);
CREATE INDEX rights_ticket_events_ticket ON rights_ticket_events (ticket_id, id);

-- Account cancellations waiting out their cooling-off period (P19). The row goes when
-- the user revokes or when the account is erased.
CREATE TABLE account_cancellations (
    subject      BLOB PRIMARY KEY,
    ticket_id    BIGINT NOT NULL,
    requested_ms BIGINT NOT NULL,
    effective_ms BIGINT NOT NULL
);
CREATE INDEX account_cancellations_due ON account_cancellations (effective_ms);

-- Partners that received a cancelled user's data and must be told of the erasure (L8);
-- identified only by the erasure's random reference.
CREATE TABLE partner_notifications (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    erasure_ref TEXT NOT NULL,
    partner     TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    notified_ms BIGINT
);
