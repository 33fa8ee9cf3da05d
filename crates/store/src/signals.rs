//! Signals storage (issue 5): the per-subject switches (location, personalization).
//! Positions themselves are personal fields ([`crate::personal`]), never stored here.

use custos_core::SubjectId;

use crate::{on_db, Db, StoreResult};

/// Per-subject on/off switches.
#[derive(Debug, Clone)]
pub struct SwitchStore {
    db: Db,
}

impl SwitchStore {
    pub fn new(db: Db) -> SwitchStore {
        SwitchStore { db }
    }

    /// The switch's state; `None` if the subject never set it.
    pub async fn get(&self, subject: SubjectId, switch: &str) -> StoreResult<Option<bool>> {
        let row: Option<(i64,)> = on_db!(&self.db, p => sqlx::query_as(
            "SELECT enabled FROM signal_switches WHERE subject = $1 AND switch = $2")
            .bind(subject.to_string())
            .bind(switch)
            .fetch_optional(p)
            .await?);
        Ok(row.map(|(e,)| e != 0))
    }

    /// Sets the switch (one row per subject and switch, overwritten in place).
    pub async fn set(
        &self,
        subject: SubjectId,
        switch: &str,
        enabled: bool,
        now_ms: i64,
    ) -> StoreResult<()> {
        on_db!(&self.db, p => sqlx::query(
            "INSERT INTO signal_switches (subject, switch, enabled, updated_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (subject, switch) DO UPDATE SET enabled = excluded.enabled, \
             updated_ms = excluded.updated_ms")
            .bind(subject.to_string())
            .bind(switch)
            .bind(i64::from(enabled))
            .bind(now_ms)
            .execute(p)
            .await.map(|_| ())?);
        Ok(())
    }

    /// Deletes every switch of the subject (erasure).
    pub async fn delete_subject(&self, subject: SubjectId) -> StoreResult<u64> {
        Ok(
            on_db!(&self.db, p => sqlx::query("DELETE FROM signal_switches WHERE subject = $1")
            .bind(subject.to_string())
            .execute(p)
            .await?
            .rows_affected()),
        )
    }
}

/// One service-log event as stored: already pseudonymized and truncated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub pseudonym: [u8; 16],
    pub purpose: String,
    pub kind: String,
    pub target: Option<String>,
    pub ip_prefix: Option<String>,
    pub carrier: Option<String>,
    pub language: Option<String>,
    pub at_ms: i64,
    pub expires_at_ms: Option<i64>,
}

const EVENT_COLUMNS: &str =
    "pseudonym, purpose, kind, target, ip_prefix, carrier, language, at_ms, expires_at";
const EVENT_ARITY: usize = 9;

/// A multi-row INSERT. SQLite gets anonymous `?` placeholders (see `ledger::insert_sql`:
/// sqlx resolves numbered ones in quadratic time over a large statement).
fn event_insert_sql(rows: usize, backend: crate::Backend) -> String {
    let mut sql = format!("INSERT INTO service_events ({EVENT_COLUMNS}) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 1..=EVENT_ARITY {
            if c > 1 {
                sql.push(',');
            }
            if backend == crate::Backend::Sqlite {
                sql.push('?');
            } else {
                sql.push_str(&format!("${}", i * EVENT_ARITY + c));
            }
        }
        sql.push(')');
    }
    sql
}

macro_rules! bind_event {
    ($q:expr, $e:expr) => {
        $q.bind($e.pseudonym.to_vec())
            .bind($e.purpose.clone())
            .bind($e.kind.clone())
            .bind($e.target.clone())
            .bind($e.ip_prefix.clone())
            .bind($e.carrier.clone())
            .bind($e.language.clone())
            .bind($e.at_ms)
            .bind($e.expires_at_ms)
    };
}

/// Rows per statement; keeps every statement under both backends' parameter limits.
pub const EVENTS_PER_STATEMENT: usize = 1_000;

/// The pseudonymized service log.
#[derive(Debug, Clone)]
pub struct EventStore {
    db: Db,
}

impl EventStore {
    pub fn new(db: Db) -> EventStore {
        EventStore { db }
    }

    /// Appends events with one multi-row INSERT per [`EVENTS_PER_STATEMENT`] rows.
    pub async fn append(&self, events: &[StoredEvent]) -> StoreResult<u64> {
        let mut n = 0;
        for chunk in events.chunks(EVENTS_PER_STATEMENT) {
            let sql = event_insert_sql(chunk.len(), self.db.backend());
            n += on_db!(&self.db, p => {
                let mut q = sqlx::query(&sql);
                for e in chunk {
                    q = bind_event!(q, e);
                }
                q.execute(p).await?.rows_affected()
            });
        }
        Ok(n)
    }

    /// Events of one pseudonym, oldest first.
    pub async fn for_pseudonym(&self, pseudonym: &[u8; 16]) -> StoreResult<Vec<StoredEvent>> {
        type Row = (
            Vec<u8>,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            i64,
            Option<i64>,
        );
        let rows: Vec<Row> = on_db!(&self.db, p => sqlx::query_as(
            "SELECT pseudonym, purpose, kind, target, ip_prefix, carrier, language, at_ms, expires_at \
             FROM service_events WHERE pseudonym = $1 ORDER BY id")
            .bind(pseudonym.to_vec())
            .fetch_all(p)
            .await?);
        rows.into_iter()
            .map(|r| {
                Ok(StoredEvent {
                    pseudonym: r
                        .0
                        .as_slice()
                        .try_into()
                        .map_err(|_| crate::StoreError::Corrupt("pseudonym length".into()))?,
                    purpose: r.1,
                    kind: r.2,
                    target: r.3,
                    ip_prefix: r.4,
                    carrier: r.5,
                    language: r.6,
                    at_ms: r.7,
                    expires_at_ms: r.8,
                })
            })
            .collect()
    }

    /// Deletes events past their retention.
    pub async fn purge_expired(&self, now_ms: i64) -> StoreResult<u64> {
        Ok(on_db!(&self.db, p => sqlx::query(
            "DELETE FROM service_events WHERE expires_at IS NOT NULL AND expires_at <= $1")
            .bind(now_ms)
            .execute(p)
            .await?
            .rows_affected()))
    }

    /// Deletes the events one pseudonym's subject gave under `purpose` (its withdrawal).
    pub async fn delete_for(&self, pseudonym: &[u8; 16], purpose: &str) -> StoreResult<u64> {
        Ok(on_db!(&self.db, p => sqlx::query(
            "DELETE FROM service_events WHERE pseudonym = $1 AND purpose = $2")
            .bind(pseudonym.to_vec())
            .bind(purpose)
            .execute(p)
            .await?
            .rows_affected()))
    }

    /// Every stored event (all pseudonyms).
    pub async fn count(&self) -> StoreResult<i64> {
        let (n,): (i64,) = on_db!(&self.db, p => sqlx::query_as(
            "SELECT COUNT(*) FROM service_events")
            .fetch_one(p)
            .await?);
        Ok(n)
    }
}

/// What preference traits are derived from for catalog items: `(id, category, tags)` of
/// each item of `ids` that exists (in no particular order). Reads the catalog only.
pub async fn item_facets(db: &Db, ids: &[i64]) -> StoreResult<Vec<(i64, String, Vec<String>)>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let list = (1..=chunk.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!("SELECT id, category, tags FROM catalog_items WHERE id IN ({list})");
        let rows: Vec<(i64, String, String)> = on_db!(db, p => {
            let mut q = sqlx::query_as(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            q.fetch_all(p).await?
        });
        for (id, category, tags) in rows {
            let tags: Vec<String> = serde_json::from_str(&tags)
                .map_err(|e| crate::StoreError::Corrupt(format!("item {id} tags: {e}")))?;
            out.push((id, category, tags));
        }
    }
    Ok(out)
}
