-- The privacy kernel: policy versions, consent ledger, personal fields, lookups, secrets.
CREATE TABLE policy_versions (
    seq          BIGSERIAL PRIMARY KEY,
    hash         TEXT NOT NULL UNIQUE,
    revision     TEXT NOT NULL,
    source       TEXT NOT NULL,
    published_at BIGINT NOT NULL
);

CREATE FUNCTION custos_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;

CREATE TRIGGER policy_versions_immutable BEFORE UPDATE OR DELETE ON policy_versions
FOR EACH ROW EXECUTE FUNCTION custos_refuse_change();

CREATE TABLE consent_ledger (
    seq         BIGINT PRIMARY KEY,
    subject     BYTEA NOT NULL,
    purpose     TEXT NOT NULL,
    decision    TEXT NOT NULL,
    policy_hash TEXT NOT NULL,
    method      TEXT NOT NULL,
    at_ms       BIGINT NOT NULL,
    receipt_id  BYTEA NOT NULL,
    prev_hash   BYTEA NOT NULL,
    hash        BYTEA NOT NULL
);
CREATE INDEX consent_ledger_subject ON consent_ledger (subject, seq);
CREATE INDEX consent_ledger_receipt ON consent_ledger (receipt_id);
CREATE TRIGGER consent_ledger_append_only BEFORE UPDATE OR DELETE ON consent_ledger
FOR EACH ROW EXECUTE FUNCTION custos_refuse_change();

CREATE TABLE ledger_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BYTEA NOT NULL
);
INSERT INTO ledger_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

CREATE TABLE personal_fields (
    subject    TEXT NOT NULL,
    field      TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    category   TEXT NOT NULL,
    sealed     BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    expires_at BIGINT,
    PRIMARY KEY (subject, field)
);
CREATE INDEX personal_fields_expiry ON personal_fields (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE subject_lookups (
    domain     TEXT NOT NULL,
    blind      BYTEA NOT NULL,
    subject    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (domain, blind)
);
CREATE INDEX subject_lookups_subject ON subject_lookups (subject);

CREATE TABLE installation_secrets (
    name    TEXT PRIMARY KEY,
    wrapped BYTEA NOT NULL
);
