//! Figures for the operator console's dashboard (read-only): consent decisions per
//! purpose and day from the ledger, open and overdue rights tickets, catalog ingest per
//! day, open incidents and those past the 72-hour alarm, and the share log without
//! subject ids. Per-day consent counts below [`MIN_REPORTED_COUNT`] are suppressed, as
//! in [`Ops::consent_counts`]: a dashboard must not single out one person's decision.

use custos_store::dashboard::{self as store, ShareLogRow, DAY_MS};
use serde::Serialize;

use super::subjects::MIN_REPORTED_COUNT;
use super::Ops;
use crate::AppResult;

/// The longest window the dashboard looks back over.
pub const MAX_DAYS: u32 = 90;

/// Decisions recorded for one purpose on one day; `None` = fewer than
/// [`MIN_REPORTED_COUNT`] (suppressed), `Some(0)` = none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayCounts {
    /// Start of the UTC day, in milliseconds.
    pub day_ms: i64,
    pub given: Option<i64>,
    pub refused: Option<i64>,
    pub withdrawn: Option<i64>,
    /// Refused and withdrawn together (suppressed on the sum).
    pub not_given: Option<i64>,
}

/// One purpose's series, one entry per day of the window (oldest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurposeSeries {
    pub purpose: String,
    pub days: Vec<DayCounts>,
}

/// Catalog items written on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngestDay {
    pub day_ms: i64,
    pub items: i64,
}

/// Everything the dashboard shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dashboard {
    /// First day of the window (UTC midnight, ms).
    pub from_ms: i64,
    pub days: u32,
    pub consents: Vec<PurposeSeries>,
    pub open_tickets: i64,
    pub overdue_tickets: i64,
    pub ingest: Vec<IngestDay>,
    /// Incidents without a regulator report.
    pub open_incidents: i64,
    /// Of those, past 72 hours since detection.
    pub alarmed_incidents: i64,
}

fn suppressed(n: i64) -> Option<i64> {
    if n == 0 || n >= MIN_REPORTED_COUNT as i64 {
        Some(n)
    } else {
        None
    }
}

impl Ops {
    /// The dashboard's figures over the last `days` days (1–[`MAX_DAYS`], today included).
    pub async fn dashboard(&self, days: u32) -> AppResult<Dashboard> {
        let days = days.clamp(1, MAX_DAYS);
        let now = self.now_ms();
        let today = now.div_euclid(DAY_MS);
        let first = today - i64::from(days) + 1;
        let from_ms = first * DAY_MS;
        let db = &self.kernel.db;

        let mut consents: Vec<PurposeSeries> = Vec::new();
        let policy = self.kernel.gate.regime().current().clone();
        for purpose in policy
            .purposes()
            .iter()
            .filter(|p| p.basis == custos_policy::LegalBasis::Consent)
        {
            consents.push(PurposeSeries {
                purpose: purpose.id.clone(),
                days: Vec::new(),
            });
        }
        let raw = store::decisions_per_day(db, from_ms).await?;
        for r in &raw {
            if !consents.iter().any(|s| s.purpose == r.purpose) {
                consents.push(PurposeSeries {
                    purpose: r.purpose.clone(),
                    days: Vec::new(),
                });
            }
        }
        for series in &mut consents {
            series.days = (first..=today)
                .map(|d| {
                    let count = |decision: &str| {
                        raw.iter()
                            .filter(|r| {
                                r.day == d && r.purpose == series.purpose && r.decision == decision
                            })
                            .map(|r| r.count)
                            .sum::<i64>()
                    };
                    DayCounts {
                        day_ms: d * DAY_MS,
                        given: suppressed(count("given")),
                        refused: suppressed(count("refused")),
                        withdrawn: suppressed(count("withdrawn")),
                        not_given: suppressed(count("refused") + count("withdrawn")),
                    }
                })
                .collect();
        }

        let (open_tickets, overdue_tickets) = store::ticket_counts(db, now).await?;
        let per_day = store::ingest_per_day(db, from_ms).await?;
        let ingest = (first..=today)
            .map(|d| IngestDay {
                day_ms: d * DAY_MS,
                items: per_day
                    .iter()
                    .find(|(day, _)| *day == d)
                    .map_or(0, |(_, n)| *n),
            })
            .collect();
        let incidents = self.incidents().await?;
        let open_incidents = incidents
            .iter()
            .filter(|i| i.regulator_reported_ms.is_none())
            .count() as i64;
        let alarmed_incidents = self.incident_alarms().await?.len() as i64;
        Ok(Dashboard {
            from_ms,
            days,
            consents,
            open_tickets,
            overdue_tickets,
            ingest,
            open_incidents,
            alarmed_incidents,
        })
    }

    /// The share log, newest first, `limit` entries (at most 500) before id `before`.
    pub async fn share_log(&self, before: Option<i64>, limit: i64) -> AppResult<Vec<ShareLogRow>> {
        Ok(store::share_log(&self.kernel.db, before, limit).await?)
    }
}
