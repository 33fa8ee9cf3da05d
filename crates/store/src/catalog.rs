//! The catalog: items, their media, and the change sequence that search indexes follow.
//! Catalog rows are not personal data. Every write records, in its own transaction, one
//! change per item touched; the change numbers come from the `catalog_head` row, which
//! each writer updates first, so writers queue and numbers become visible in order (a
//! reader that has seen change *n* has seen every change before it).

use crate::{on_db, Db, StoreError, StoreResult};

/// An item as an operator supplies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    /// The operator's own identifier (SKU); importing it again updates the item.
    pub external_id: Option<String>,
    pub title_zh: String,
    pub title_en: String,
    pub description_zh: String,
    pub description_en: String,
    pub category: String,
    pub tags: Vec<String>,
    /// Minor units (fen).
    pub price_min: i64,
    pub price_max: i64,
    pub currency: String,
}

/// A stored item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub id: i64,
    pub fields: NewItem,
    pub media: Vec<Media>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// A media file of an item, kept in the object store under `object_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub id: i64,
    pub item_id: i64,
    /// `image` or `video`.
    pub kind: String,
    pub content_type: String,
    pub bytes: i64,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub object_key: String,
    pub thumb_key: Option<String>,
    pub position: i64,
}

/// A media file to record (its bytes are already in the object store).
#[derive(Debug, Clone)]
pub struct NewMedia {
    pub kind: String,
    pub content_type: String,
    pub bytes: i64,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub object_key: String,
    pub thumb_key: Option<String>,
}

type ItemRow = (
    i64,
    Option<String>,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
    i64,
    i64,
);
const ITEM_COLUMNS: &str = "id, external_id, title_zh, title_en, description_zh, description_en, \
    category, tags, price_min, price_max, currency, created_ms, updated_ms";

type MediaRow = (
    i64,
    i64,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    String,
    Option<String>,
    i64,
);
const MEDIA_COLUMNS: &str =
    "id, item_id, kind, content_type, bytes, width, height, object_key, thumb_key, position";

fn item_from(r: ItemRow) -> StoreResult<Item> {
    let tags: Vec<String> = serde_json::from_str(&r.7)
        .map_err(|_| StoreError::Corrupt(format!("catalog item {} has malformed tags", r.0)))?;
    Ok(Item {
        id: r.0,
        fields: NewItem {
            external_id: r.1,
            title_zh: r.2,
            title_en: r.3,
            description_zh: r.4,
            description_en: r.5,
            category: r.6,
            tags,
            price_min: r.8,
            price_max: r.9,
            currency: r.10,
        },
        media: Vec::new(),
        created_ms: r.11,
        updated_ms: r.12,
    })
}

fn media_from(r: MediaRow) -> Media {
    Media {
        id: r.0,
        item_id: r.1,
        kind: r.2,
        content_type: r.3,
        bytes: r.4,
        width: r.5,
        height: r.6,
        object_key: r.7,
        thumb_key: r.8,
        position: r.9,
    }
}

fn tags_json(tags: &[String]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".into())
}

/// Takes the next change number and records that `item_id` changed; inside the caller's
/// transaction, which the first call locks on the head row.
macro_rules! record_change {
    ($tx:expr, $item:expr, $now:expr) => {{
        let (seq,): (i64,) =
            sqlx::query_as("UPDATE catalog_head SET seq = seq + 1 WHERE id = 1 RETURNING seq")
                .fetch_one(&mut *$tx)
                .await?;
        sqlx::query("INSERT INTO catalog_changes (seq, item_id, at_ms) VALUES ($1, $2, $3)")
            .bind(seq)
            .bind($item)
            .bind($now)
            .execute(&mut *$tx)
            .await?;
        seq
    }};
}

/// Inserts items (or updates those whose `external_id` exists) in one transaction, all or
/// nothing; `progress` is called with the number written so far. Returns the ids in order.
pub async fn upsert_items(
    db: &Db,
    items: &[NewItem],
    now_ms: i64,
    progress: &mut (dyn FnMut(usize) + Send),
) -> StoreResult<Vec<i64>> {
    let mut ids = Vec::with_capacity(items.len());
    on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        for (n, it) in items.iter().enumerate() {
            let existing: Option<(i64,)> = match &it.external_id {
                Some(ext) => sqlx::query_as("SELECT id FROM catalog_items WHERE external_id = $1")
                    .bind(ext)
                    .fetch_optional(&mut *tx)
                    .await?,
                None => None,
            };
            let id = match existing {
                Some((id,)) => {
                    sqlx::query(
                        "UPDATE catalog_items SET title_zh = $1, title_en = $2, description_zh = $3, \
                         description_en = $4, category = $5, tags = $6, price_min = $7, price_max = $8, \
                         currency = $9, updated_ms = $10 WHERE id = $11")
                        .bind(&it.title_zh).bind(&it.title_en).bind(&it.description_zh)
                        .bind(&it.description_en).bind(&it.category).bind(tags_json(&it.tags))
                        .bind(it.price_min).bind(it.price_max).bind(&it.currency).bind(now_ms).bind(id)
                        .execute(&mut *tx)
                        .await?;
                    id
                }
                None => {
                    let (id,): (i64,) = sqlx::query_as(
                        "INSERT INTO catalog_items (external_id, title_zh, title_en, description_zh, \
                         description_en, category, tags, price_min, price_max, currency, created_ms, updated_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING id")
                        .bind(&it.external_id).bind(&it.title_zh).bind(&it.title_en)
                        .bind(&it.description_zh).bind(&it.description_en).bind(&it.category)
                        .bind(tags_json(&it.tags)).bind(it.price_min).bind(it.price_max)
                        .bind(&it.currency).bind(now_ms)
                        .fetch_one(&mut *tx)
                        .await?;
                    id
                }
            };
            record_change!(tx, id, now_ms);
            ids.push(id);
            if (n + 1) % 500 == 0 {
                progress(n + 1);
            }
        }
        tx.commit().await?;
    });
    progress(items.len());
    Ok(ids)
}

/// Deletes an item and its media rows; returns the object keys to remove from the object
/// store, or `None` when there was no such item.
pub async fn delete_item(db: &Db, id: i64, now_ms: i64) -> StoreResult<Option<Vec<String>>> {
    on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        let keys: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT object_key, thumb_key FROM catalog_media WHERE item_id = $1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        sqlx::query("DELETE FROM catalog_media WHERE item_id = $1").bind(id).execute(&mut *tx).await?;
        let gone = sqlx::query("DELETE FROM catalog_items WHERE id = $1").bind(id).execute(&mut *tx).await?;
        if gone.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        record_change!(tx, id, now_ms);
        tx.commit().await?;
        Ok(Some(keys.into_iter().flat_map(|(k, t)| std::iter::once(k).chain(t)).collect()))
    })
}

/// Records a media file of an item; `None` when the item does not exist.
pub async fn add_media(
    db: &Db,
    item_id: i64,
    m: &NewMedia,
    now_ms: i64,
) -> StoreResult<Option<Media>> {
    on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        // Lock the head first so concurrent writers queue in change order.
        let exists: Option<(i64,)> = sqlx::query_as("SELECT id FROM catalog_items WHERE id = $1")
            .bind(item_id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        let (position,): (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(position), -1) + 1 FROM catalog_media WHERE item_id = $1")
                .bind(item_id)
                .fetch_one(&mut *tx)
                .await?;
        let sql = format!(
            "INSERT INTO catalog_media (item_id, kind, content_type, bytes, width, height, object_key, \
             thumb_key, position, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             RETURNING {MEDIA_COLUMNS}");
        let row: MediaRow = sqlx::query_as(&sql)
            .bind(item_id).bind(&m.kind).bind(&m.content_type).bind(m.bytes).bind(m.width)
            .bind(m.height).bind(&m.object_key).bind(&m.thumb_key).bind(position).bind(now_ms)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query("UPDATE catalog_items SET updated_ms = $1 WHERE id = $2")
            .bind(now_ms).bind(item_id).execute(&mut *tx).await?;
        record_change!(tx, item_id, now_ms);
        tx.commit().await?;
        Ok(Some(media_from(row)))
    })
}

/// Items by id with their media, in no particular order; missing ids are left out.
pub async fn items_by_ids(db: &Db, ids: &[i64]) -> StoreResult<Vec<Item>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let list = (1..=chunk.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(",");
        let isql = format!("SELECT {ITEM_COLUMNS} FROM catalog_items WHERE id IN ({list})");
        let msql = format!(
            "SELECT {MEDIA_COLUMNS} FROM catalog_media WHERE item_id IN ({list}) ORDER BY item_id, position");
        let (rows, media): (Vec<ItemRow>, Vec<MediaRow>) = on_db!(db, pool => {
            let mut q = sqlx::query_as::<_, ItemRow>(&isql);
            let mut m = sqlx::query_as::<_, MediaRow>(&msql);
            for id in chunk {
                q = q.bind(*id);
                m = m.bind(*id);
            }
            (q.fetch_all(pool).await?, m.fetch_all(pool).await?)
        });
        let mut by_item: std::collections::HashMap<i64, Vec<Media>> = Default::default();
        for m in media {
            by_item.entry(m.1).or_default().push(media_from(m));
        }
        for r in rows {
            let mut it = item_from(r)?;
            it.media = by_item.remove(&it.id).unwrap_or_default();
            out.push(it);
        }
    }
    Ok(out)
}

/// One item with its media.
pub async fn get_item(db: &Db, id: i64) -> StoreResult<Option<Item>> {
    Ok(items_by_ids(db, &[id]).await?.pop())
}

/// One media file.
pub async fn get_media(db: &Db, id: i64) -> StoreResult<Option<Media>> {
    let sql = format!("SELECT {MEDIA_COLUMNS} FROM catalog_media WHERE id = $1");
    let row: Option<MediaRow> =
        on_db!(db, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?);
    Ok(row.map(media_from))
}

/// Up to `limit` changes after `seq`: `(seq, item_id)`, in order.
pub async fn changes_after(db: &Db, seq: i64, limit: i64) -> StoreResult<Vec<(i64, i64)>> {
    Ok(on_db!(db, pool => sqlx::query_as(
        "SELECT seq, item_id FROM catalog_changes WHERE seq > $1 ORDER BY seq LIMIT $2")
        .bind(seq).bind(limit).fetch_all(pool).await?))
}

/// The newest change number (0 when the catalog never changed).
pub async fn head(db: &Db) -> StoreResult<i64> {
    let (seq,): (i64,) = on_db!(db, pool => sqlx::query_as(
        "SELECT seq FROM catalog_head WHERE id = 1").fetch_one(pool).await?);
    Ok(seq)
}

/// Number of items.
pub async fn count_items(db: &Db) -> StoreResult<i64> {
    let (n,): (i64,) = on_db!(db, pool => sqlx::query_as(
        "SELECT COUNT(*) FROM catalog_items").fetch_one(pool).await?);
    Ok(n)
}
