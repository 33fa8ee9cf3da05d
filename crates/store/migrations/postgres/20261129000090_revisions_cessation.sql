-- Policy revisions and cessation (issue 7: P18, P22, P31, P35, L4).
-- No column holds personal data or a subject id: users' agreements live in the consent
-- ledger, and the subjects a cessation concerns are derived when it runs.

-- One announcement per published version that users were told about.
CREATE TABLE policy_announcements (
    hash            TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,          -- revision | controller_change
    previous_hash   TEXT,
    paused_purposes TEXT NOT NULL,          -- comma-separated purpose ids
    announced_at    BIGINT NOT NULL,
    notified        BIGINT NOT NULL DEFAULT 0
);

-- A discontinued feature, or the whole service (feature = '*'); one row each.
CREATE TABLE cessations (
    id             BIGSERIAL PRIMARY KEY,
    scope          TEXT NOT NULL,           -- feature | service
    feature        TEXT NOT NULL,
    purposes       TEXT NOT NULL,           -- comma-separated purposes whose collection stopped
    reason         TEXT NOT NULL,
    ceased_at      BIGINT NOT NULL,
    erase_after    BIGINT NOT NULL,
    status         TEXT NOT NULL,           -- collection_stopped | erasing | completed
    notified       BIGINT NOT NULL DEFAULT 0,
    subjects_total BIGINT NOT NULL DEFAULT 0,
    subjects_done  BIGINT NOT NULL DEFAULT 0,
    completed_at   BIGINT
);
CREATE UNIQUE INDEX cessations_one_per_feature ON cessations (scope, feature);
