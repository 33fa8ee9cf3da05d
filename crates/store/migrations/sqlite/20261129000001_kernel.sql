-- The privacy kernel: policy versions, consent ledger, personal fields, lookups, secrets.
CREATE TABLE policy_versions (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    hash         TEXT NOT NULL UNIQUE,
    revision     TEXT NOT NULL,
    source       TEXT NOT NULL,
    published_at BIGINT NOT NULL
);
CREATE TRIGGER policy_versions_immutable_u BEFORE UPDATE ON policy_versions
BEGIN SELECT RAISE(ABORT, 'policy versions are immutable'); END;
CREATE TRIGGER policy_versions_immutable_d BEFORE DELETE ON policy_versions
BEGIN SELECT RAISE(ABORT, 'policy versions are immutable'); END;

CREATE TABLE consent_ledger (
    seq         INTEGER PRIMARY KEY,
    subject     BLOB NOT NULL,
    purpose     TEXT NOT NULL,
    decision    TEXT NOT NULL,
    policy_hash TEXT NOT NULL,
    method      TEXT NOT NULL,
    at_ms       BIGINT NOT NULL,
    receipt_id  BLOB NOT NULL,
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL
);
CREATE INDEX consent_ledger_subject ON consent_ledger (subject, seq);
CREATE INDEX consent_ledger_receipt ON consent_ledger (receipt_id);
CREATE TRIGGER consent_ledger_append_only_u BEFORE UPDATE ON consent_ledger
BEGIN SELECT RAISE(ABORT, 'the consent ledger is append-only'); END;
CREATE TRIGGER consent_ledger_append_only_d BEFORE DELETE ON consent_ledger
BEGIN SELECT RAISE(ABORT, 'the consent ledger is append-only'); END;

CREATE TABLE ledger_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BLOB NOT NULL
);
INSERT INTO ledger_head (id, seq, hash) VALUES (1, 0, zeroblob(32));

CREATE TABLE personal_fields (
    subject    TEXT NOT NULL,
    field      TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    category   TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    updated_at BIGINT NOT NULL,
    expires_at BIGINT,
    PRIMARY KEY (subject, field)
);
CREATE INDEX personal_fields_expiry ON personal_fields (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE subject_lookups (
    domain     TEXT NOT NULL,
    blind      BLOB NOT NULL,
    subject    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (domain, blind)
);
CREATE INDEX subject_lookups_subject ON subject_lookups (subject);

CREATE TABLE installation_secrets (
    name    TEXT PRIMARY KEY,
    wrapped BLOB NOT NULL
);
