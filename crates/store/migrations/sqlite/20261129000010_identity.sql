-- Accounts and identity (issue 3): accounts, SMS challenges, throttle events, sessions.
-- No column holds a personal value in clear: phones are blind indexes (keyed HMAC) or
-- sealed, codes and session tokens are keyed hashes.

CREATE TABLE accounts (
    subject          TEXT PRIMARY KEY,
    created_at       BIGINT NOT NULL,
    -- adult | minor (14 to 17) | child (under 14); with the guardian's consent, which
    -- the ledger holds (minors_guardian), it drives the gate's guardian check.
    age_band         TEXT NOT NULL DEFAULT 'adult'
);

CREATE TABLE sms_challenges (
    id           TEXT PRIMARY KEY,
    purpose      TEXT NOT NULL,
    subject      TEXT,
    phone_blind  BLOB NOT NULL,
    phone_sealed BLOB NOT NULL,
    code_mac     BLOB NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    consumed_at  BIGINT
);
CREATE INDEX sms_challenges_expiry ON sms_challenges (expires_at);
CREATE INDEX sms_challenges_subject ON sms_challenges (subject);

CREATE TABLE throttle_events (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    bucket BLOB NOT NULL,
    at_ms  BIGINT NOT NULL
);
CREATE INDEX throttle_events_bucket ON throttle_events (bucket, at_ms);
CREATE INDEX throttle_events_at ON throttle_events (at_ms);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    token_hash   BLOB NOT NULL UNIQUE,
    subject      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    reauth_at    BIGINT
);
CREATE INDEX sessions_subject ON sessions (subject);

-- Pending OpenID Connect authorizations: single use, short-lived. The state and the
-- browser binding are keyed hashes; the PKCE verifier and nonce are sealed.
CREATE TABLE oidc_flows (
    state_hash     BLOB PRIMARY KEY,
    provider       TEXT NOT NULL,
    subject        TEXT,
    binding_hash   BLOB NOT NULL,
    secrets_sealed BLOB NOT NULL,
    fields         TEXT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX oidc_flows_expiry ON oidc_flows (expires_at);

-- Which guardian (by a blind index of their phone) consented for which minor; lets a
-- guardian signed in with that phone see and act on the minor's data.
CREATE TABLE guardianships (
    minor          TEXT PRIMARY KEY,
    guardian_blind BLOB NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX guardianships_guardian ON guardianships (guardian_blind);
