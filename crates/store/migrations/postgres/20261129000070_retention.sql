-- Retention (issue 6 point 7, issue 5 point 3, L9).
--
-- 1. The service log becomes a table partitioned by month of the event time (`at_ms`,
--    UTC months), so the purge drops whole months that are past retention instead of
--    deleting them row by row. Same columns, same indexes (now per partition), same
--    INSERT and SELECT statements; the primary key gains `at_ms` because a partitioned
--    table's unique keys must hold the partition key. The jobs create the months ahead
--    (`custos_store::retention::ensure_event_partitions`); a default partition catches any
--    event outside the months that exist, and its rows are purged like any other.
ALTER TABLE service_events RENAME TO service_events_unpartitioned;
ALTER INDEX service_events_pkey RENAME TO service_events_unpartitioned_pkey;
ALTER INDEX service_events_expires RENAME TO service_events_unpartitioned_expires;
ALTER INDEX service_events_at RENAME TO service_events_unpartitioned_at;
ALTER INDEX IF EXISTS service_events_pseudonym RENAME TO service_events_unpartitioned_pseudonym;

CREATE TABLE service_events (
    id         BIGINT NOT NULL DEFAULT nextval('service_events_id_seq'),
    pseudonym  BYTEA NOT NULL,
    purpose    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    target     TEXT,
    ip_prefix  TEXT,
    carrier    TEXT,
    language   TEXT,
    at_ms      BIGINT NOT NULL,
    expires_at BIGINT,
    PRIMARY KEY (id, at_ms)
) PARTITION BY RANGE (at_ms);
ALTER SEQUENCE service_events_id_seq OWNED BY service_events.id;
CREATE INDEX service_events_expires ON service_events (expires_at);
CREATE INDEX service_events_at ON service_events (at_ms);
CREATE TABLE service_events_default PARTITION OF service_events DEFAULT;

-- Months for the rows already stored (at most two years back; older rows go to the
-- default partition) up to two months ahead of now.
DO $$
DECLARE
    now_utc timestamp := date_trunc('month', now() AT TIME ZONE 'UTC');
    m       timestamp;
    stop    timestamp;
    lo      bigint;
    hi      bigint;
BEGIN
    SELECT GREATEST(
               LEAST(COALESCE(date_trunc('month', to_timestamp(min(at_ms) / 1000.0) AT TIME ZONE 'UTC'), now_utc), now_utc),
               now_utc - interval '24 months'),
           GREATEST(COALESCE(date_trunc('month', to_timestamp(max(at_ms) / 1000.0) AT TIME ZONE 'UTC'), now_utc), now_utc)
               + interval '2 months'
      INTO m, stop
      FROM service_events_unpartitioned;
    stop := LEAST(stop, now_utc + interval '24 months');
    WHILE m <= stop LOOP
        lo := (extract(epoch FROM m) * 1000)::bigint;
        hi := (extract(epoch FROM m + interval '1 month') * 1000)::bigint;
        EXECUTE format('CREATE TABLE %I PARTITION OF service_events FOR VALUES FROM (%s) TO (%s)',
                       'service_events_y' || to_char(m, 'YYYY') || 'm' || to_char(m, 'MM'), lo, hi);
        m := m + interval '1 month';
    END LOOP;
END $$;

INSERT INTO service_events (id, pseudonym, purpose, kind, target, ip_prefix, carrier, language, at_ms, expires_at)
SELECT id, pseudonym, purpose, kind, target, ip_prefix, carrier, language, at_ms, expires_at
  FROM service_events_unpartitioned;
DROP TABLE service_events_unpartitioned;
-- The index by pseudonym (withdrawal and export find a subject's events with it).
CREATE INDEX IF NOT EXISTS service_events_pseudonym ON service_events (pseudonym);

-- 2. Deleting a catalog item deletes the bookmarks pointing to it (a bookmark of nothing
--    serves no purpose, so it is not kept); bookmarks left behind before this migration go
--    now.
CREATE FUNCTION custos_delete_item_bookmarks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM bookmarks WHERE item_id = OLD.id;
    RETURN OLD;
END $$;
CREATE TRIGGER catalog_items_delete_bookmarks AFTER DELETE ON catalog_items
FOR EACH ROW EXECUTE FUNCTION custos_delete_item_bookmarks();
DELETE FROM bookmarks WHERE NOT EXISTS (SELECT 1 FROM catalog_items i WHERE i.id = bookmarks.item_id);
