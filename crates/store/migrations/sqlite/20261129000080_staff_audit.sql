-- Staff accounts, staff sessions and the tamper-evident audit log (issue 7, P24, L3).
-- Staff are not users: their accounts live apart from `accounts` and never pass the gate.
CREATE TABLE staff_accounts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    username       TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    -- The TOTP secret, wrapped by a key derived from the master key.
    totp_wrapped   BLOB NOT NULL,
    -- The newest TOTP time step used: a code is good once.
    totp_last_step BIGINT NOT NULL DEFAULT 0,
    failures       INTEGER NOT NULL DEFAULT 0,
    locked_until   BIGINT NOT NULL DEFAULT 0,
    disabled_at    BIGINT,
    created_at     BIGINT NOT NULL
);

-- Staff sessions: only a keyed hash of the token is kept.
CREATE TABLE staff_sessions (
    token_hash   BLOB PRIMARY KEY,
    staff_id     BIGINT NOT NULL REFERENCES staff_accounts (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX staff_sessions_staff ON staff_sessions (staff_id);

-- The audit log: append-only, each entry chained to its predecessor by hash.
CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    at_ms     BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    reason    TEXT NOT NULL,
    detail    TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL
);
CREATE INDEX audit_log_target ON audit_log (target, seq);
CREATE TRIGGER audit_log_append_only_u BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_append_only_d BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BLOB NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, zeroblob(32));

-- Signed heads: an Ed25519 JWS over (seq, hash) of the chain, made periodically.
CREATE TABLE audit_signed_heads (
    seq       BIGINT PRIMARY KEY,
    hash      BLOB NOT NULL,
    signed_at BIGINT NOT NULL,
    jws       TEXT NOT NULL
);
CREATE TRIGGER audit_signed_heads_append_only_u BEFORE UPDATE ON audit_signed_heads
BEGIN SELECT RAISE(ABORT, 'signed audit heads are append-only'); END;
CREATE TRIGGER audit_signed_heads_append_only_d BEFORE DELETE ON audit_signed_heads
BEGIN SELECT RAISE(ABORT, 'signed audit heads are append-only'); END;
