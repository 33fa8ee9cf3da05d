-- Wrapped per-subject data keys, kept apart from the data so that destroying a key here
-- makes the subject's ciphertexts in every copy of the data database unreadable.
CREATE TABLE subject_keys (
    subject    TEXT PRIMARY KEY,
    wrapped    BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
