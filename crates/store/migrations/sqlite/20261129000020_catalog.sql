-- The catalog (issue 4): items, their media, and the change sequence every process's
-- search index follows. None of it is personal data.
CREATE TABLE catalog_items (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    external_id    TEXT UNIQUE,
    title_zh       TEXT NOT NULL,
    title_en       TEXT NOT NULL,
    description_zh TEXT NOT NULL,
    description_en TEXT NOT NULL,
    category       TEXT NOT NULL,
    tags           TEXT NOT NULL,
    price_min      BIGINT NOT NULL,
    price_max      BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    created_ms     BIGINT NOT NULL,
    updated_ms     BIGINT NOT NULL
);

CREATE TABLE catalog_media (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id      BIGINT NOT NULL REFERENCES catalog_items (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    bytes        BIGINT NOT NULL,
    width        BIGINT,
    height       BIGINT,
    object_key   TEXT NOT NULL,
    thumb_key    TEXT,
    position     BIGINT NOT NULL,
    created_ms   BIGINT NOT NULL
);
CREATE INDEX catalog_media_item ON catalog_media (item_id, position);

-- One row per item write, numbered by catalog_head, which every writer updates first:
-- writes serialize on that row, so sequence numbers become visible in order.
CREATE TABLE catalog_changes (
    seq     INTEGER PRIMARY KEY,
    item_id BIGINT NOT NULL,
    at_ms   BIGINT NOT NULL
);
CREATE TABLE catalog_head (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO catalog_head (id, seq) VALUES (1, 0);

-- What signed-in users keep (P13, P21): personal data under the `interactions` purpose.
-- Free text (collection names, comment bodies) is sealed under the subject's data key;
-- share tokens are kept only as keyed hashes. Rows name the random subject id only.
CREATE TABLE bookmarks (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    subject          BLOB NOT NULL,
    item_id          BIGINT NOT NULL,
    collection_sealed BLOB NOT NULL,
    created_ms       BIGINT NOT NULL,
    UNIQUE (subject, item_id)
);
CREATE TABLE downloads (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    subject    BLOB NOT NULL,
    item_id    BIGINT NOT NULL,
    media_id   BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX downloads_subject ON downloads (subject, id);
CREATE TABLE shares (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    subject    BLOB NOT NULL,
    item_id    BIGINT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);
CREATE INDEX shares_subject ON shares (subject, id);
CREATE TABLE comments (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    subject     BLOB NOT NULL,
    item_id     BIGINT NOT NULL,
    body_sealed BLOB NOT NULL,
    status      TEXT NOT NULL,
    attestation TEXT,
    created_ms  BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL
);
CREATE INDEX comments_item ON comments (item_id, status, id);
CREATE INDEX comments_subject ON comments (subject, id);
