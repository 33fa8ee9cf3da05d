-- Retention (issue 6 point 7, L9).
--
-- 1. One instance of each background job at a time across processes sharing the SQLite
--    file: a lock row with a lease (PostgreSQL uses advisory locks instead). A process
--    that dies while holding it blocks the job only until the lease ends. The service log
--    stays a plain table here (PostgreSQL partitions it by month).
CREATE TABLE job_locks (
    job        TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);

-- 2. Deleting a catalog item deletes the bookmarks pointing to it (a bookmark of nothing
--    serves no purpose, so it is not kept); bookmarks left behind before this migration go
--    now.
CREATE TRIGGER catalog_items_delete_bookmarks AFTER DELETE ON catalog_items
FOR EACH ROW BEGIN
    DELETE FROM bookmarks WHERE item_id = OLD.id;
END;
DELETE FROM bookmarks WHERE NOT EXISTS (SELECT 1 FROM catalog_items i WHERE i.id = bookmarks.item_id);
