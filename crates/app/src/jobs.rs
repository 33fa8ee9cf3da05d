//! Background jobs: the retention purge (L9), due account cancellations (P19, L8) and the
//! 72-hour incident alarm (P25, L11), run
//! by `custos jobs run` or in-process on a schedule by `custos serve`, one instance of each
//! job at a time across processes (PostgreSQL advisory lock; a leased lock row on SQLite).
//!
//! ## What the purge removes, and under which declared retention
//!
//! | store | purpose whose retention applies | removed |
//! |---|---|---|
//! | `personal_fields` (location, device, traits, profile, …) | the field's purpose | past its `expires_at`, or, when the purpose's retention runs from collection, written more than that many days ago |
//! | `service_events` (service and security logs) | the event's purpose | past `expires_at` or the declared days after the event; on PostgreSQL whole months are dropped first |
//! | `sms_challenges`, SMS outbox, `throttle_events`, `sessions`, `oidc_flows` | `account` | past their own short lifetimes (minutes to the session limit), all shorter than declared |
//! | `bookmarks`, `downloads`, `shares`, `comments` | `interactions` | when it runs from collection, rows older than declared; otherwise with the account (erasure); bookmarks of deleted items always |
//! | `ad_events` (de-identified ad effectiveness) | `personalized_ads` | past `expires_at` |
//! | `inbox_messages` (sealed under the subject's key) | `service_notices`, `personalized_push` | past `expires_ms` (purpose retention from collection) or `[jobs] inbox_retention_days` (365) after sending; messages stored in clear before sealing are sealed first |
//! | `export_jobs` (finished exports, sealed) | `rights_requests` | after their download window |
//! | `rights_tickets` (+ history), sent `partner_notifications` | `rights_requests` | closed and opened more than the declared days ago |
//!
//! Kept: the consent ledger is append-only (database triggers refuse DELETE) and is the
//! legal record of consent decisions; after erasure it names only a random subject id.
//! Retention running from account closure is met by erasure itself; from withdrawal, by
//! the kernel deleting the purpose's fields when consent is withdrawn. Security logs (a
//! purpose whose use is `essential.service.security`) are never purged before
//! [`custos_policy::validate::MIN_SECURITY_LOG_DAYS`], whatever a declaration says.

use std::time::Duration;

use custos_policy::RetentionFrom;
use custos_store::retention::{self, Dropped};
use serde::Deserialize;

use crate::ops::incidents::IncidentAlarm;
use crate::rights::ErasureReport;
use crate::{App, AppError, AppResult};

const DAY_MS: i64 = 86_400_000;

/// `[jobs]` in `custos.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Whether `custos serve` runs the jobs on its schedule (default: true).
    pub enabled: bool,
    /// Seconds between two purges (default: 3600).
    pub purge_interval_secs: u64,
    /// Seconds between two looks for due account cancellations (default: 600).
    pub cancellations_interval_secs: u64,
    /// Seconds between two looks for incidents past the 72-hour regulator deadline
    /// (default: 900).
    pub incident_alarms_interval_secs: u64,
    /// Days an inbox message is kept at most (default: 365); a purpose whose retention
    /// runs from collection shortens it for its messages.
    pub inbox_retention_days: u32,
    /// Months of service-log partitions created ahead on PostgreSQL (default: 3).
    pub partitions_ahead_months: u32,
    /// Seconds a SQLite job lock is leased for; a process that died holding it blocks the
    /// job at most this long (default: 1800).
    pub lock_lease_secs: u64,
}

impl Default for JobsConfig {
    fn default() -> JobsConfig {
        JobsConfig {
            enabled: true,
            purge_interval_secs: 3_600,
            cancellations_interval_secs: 600,
            incident_alarms_interval_secs: 900,
            inbox_retention_days: 365,
            partitions_ahead_months: 3,
            lock_lease_secs: 1_800,
        }
    }
}

/// A background job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Deletes every record past the retention its purpose declares.
    Purge,
    /// Erases the accounts whose cancellation cooling-off period is over.
    Cancellations,
    /// Raises the alarm for incidents 72 hours past detection without a regulator report.
    IncidentAlarms,
}

impl Job {
    pub const ALL: [Job; 3] = [Job::Purge, Job::Cancellations, Job::IncidentAlarms];

    pub fn name(self) -> &'static str {
        match self {
            Job::Purge => "purge",
            Job::Cancellations => "cancellations",
            Job::IncidentAlarms => "incident_alarms",
        }
    }
}

/// Rows one store lost to the purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purged {
    pub store: &'static str,
    pub rows: u64,
}

/// What one purge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Per store, in the order purged (stores with nothing to remove included).
    pub purged: Vec<Purged>,
    /// Monthly service-log partitions created ahead (PostgreSQL).
    pub partitions_created: Vec<String>,
    /// Monthly service-log partitions dropped whole (PostgreSQL).
    pub partitions_dropped: Vec<String>,
}

impl PurgeReport {
    /// Rows removed from `store`.
    pub fn rows(&self, store: &str) -> u64 {
        self.purged
            .iter()
            .filter(|p| p.store == store)
            .map(|p| p.rows)
            .sum()
    }

    pub fn total(&self) -> u64 {
        self.purged.iter().map(|p| p.rows).sum()
    }

    fn add(&mut self, store: &'static str, rows: u64) {
        match self.purged.iter_mut().find(|p| p.store == store) {
            Some(p) => p.rows += rows,
            None => self.purged.push(Purged { store, rows }),
        }
    }
}

/// What one run of a job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Purged(PurgeReport),
    Cancelled(Vec<ErasureReport>),
    /// Alarms raised by this run (incidents alarmed before are not raised again).
    Alarmed(Vec<IncidentAlarm>),
    /// Another process (or task) held the job's lock: nothing was done.
    Skipped,
}

/// One run of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRun {
    pub job: Job,
    pub outcome: Outcome,
}

impl std::fmt::Display for JobRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let job = self.job.name();
        match &self.outcome {
            Outcome::Skipped => write!(
                f,
                "{job}: skipped, another process is running it (its lock is held)"
            ),
            Outcome::Alarmed(a) => {
                write!(f, "{job}: raised {} alarm(s)", a.len())?;
                for x in a {
                    write!(f, "; incident {}", x.incident_id)?;
                }
                Ok(())
            }
            Outcome::Cancelled(r) => {
                write!(f, "{job}: erased {} account(s)", r.len())?;
                for e in r {
                    write!(f, "; ticket {} erasure {}", e.ticket_id, e.erasure_ref)?;
                }
                Ok(())
            }
            Outcome::Purged(r) => {
                write!(f, "{job}: removed {} record(s)", r.total())?;
                let parts: Vec<String> = r
                    .purged
                    .iter()
                    .filter(|p| p.rows > 0)
                    .map(|p| format!("{} {}", p.store, p.rows))
                    .collect();
                if !parts.is_empty() {
                    write!(f, " ({})", parts.join(", "))?;
                }
                if !r.partitions_dropped.is_empty() {
                    write!(
                        f,
                        "; dropped partitions {}",
                        r.partitions_dropped.join(", ")
                    )?;
                }
                if !r.partitions_created.is_empty() {
                    write!(
                        f,
                        "; created partitions {}",
                        r.partitions_created.join(", ")
                    )?;
                }
                write!(f, "; kept: consent ledger (append-only legal record)")
            }
        }
    }
}

/// The jobs of one process.
#[derive(Debug, Clone)]
pub struct Jobs {
    app: App,
    cfg: JobsConfig,
}

impl Jobs {
    pub fn new(app: App, cfg: JobsConfig) -> Jobs {
        Jobs { app, cfg }
    }

    /// Creates the service-log partitions of this month and the months ahead (PostgreSQL;
    /// nothing on SQLite). Run at startup and by every purge.
    pub async fn prepare(&self) -> AppResult<Vec<String>> {
        let k = &self.app.kernel;
        let created = retention::ensure_event_partitions(
            &k.db,
            k.clock.now_ms(),
            self.cfg.partitions_ahead_months,
        )
        .await?;
        if !created.is_empty() {
            tracing::info!(partitions = ?created, "created service-log partitions ahead");
        }
        Ok(created)
    }

    /// Runs `job` once if no other process is running it; [`Outcome::Skipped`] otherwise.
    pub async fn run(&self, job: Job) -> AppResult<JobRun> {
        let k = &self.app.kernel;
        let lease_ms =
            i64::try_from(self.cfg.lock_lease_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let Some(lock) = retention::try_lock(&k.db, job.name(), k.clock.now_ms(), lease_ms).await?
        else {
            tracing::info!(
                job = job.name(),
                "another process holds the job's lock; skipped"
            );
            return Ok(JobRun {
                job,
                outcome: Outcome::Skipped,
            });
        };
        let started = std::time::Instant::now();
        let result = match job {
            Job::Purge => self.purge().await.map(Outcome::Purged),
            Job::Cancellations => self.cancellations().await.map(Outcome::Cancelled),
            Job::IncidentAlarms => self
                .app
                .ops
                .raise_incident_alarms()
                .await
                .map(Outcome::Alarmed),
        };
        let released = lock.release().await;
        let run = JobRun {
            job,
            outcome: result?,
        };
        released?;
        tracing::info!(
            job = job.name(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            summary = %run,
            "job finished"
        );
        Ok(run)
    }

    /// Runs each of `jobs` once, in order.
    pub async fn run_once(&self, jobs: &[Job]) -> AppResult<Vec<JobRun>> {
        let mut out = Vec::new();
        for j in jobs {
            out.push(self.run(*j).await?);
        }
        Ok(out)
    }

    fn interval(&self, job: Job) -> Duration {
        Duration::from_secs(
            match job {
                Job::Purge => self.cfg.purge_interval_secs,
                Job::Cancellations => self.cfg.cancellations_interval_secs,
                Job::IncidentAlarms => self.cfg.incident_alarms_interval_secs,
            }
            .max(1),
        )
    }

    /// Runs `jobs` on their schedule until `stop` completes: each at once, then every
    /// interval. A failed run is logged and retried at its next turn.
    pub async fn run_scheduled(&self, jobs: &[Job], stop: impl std::future::Future<Output = ()>) {
        use tokio::time::Instant;
        tokio::pin!(stop);
        let mut due: Vec<(Job, Instant)> = jobs.iter().map(|j| (*j, Instant::now())).collect();
        loop {
            let Some(next) = due.iter().map(|(_, at)| *at).min() else {
                return;
            };
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep_until(next) => {}
            }
            for (job, at) in due.iter_mut() {
                if *at > Instant::now() {
                    continue;
                }
                if let Err(e) = self.run(*job).await {
                    tracing::warn!(job = job.name(), error = %e, "job failed; it runs again at its next turn");
                }
                *at = Instant::now() + self.interval(*job);
            }
        }
    }

    /// What `custos serve` starts: the partitions ahead now, then, when `[jobs] enabled`,
    /// every job on its schedule in a background task (stopped by aborting the handle).
    pub async fn start(
        app: App,
        cfg: JobsConfig,
    ) -> AppResult<Option<tokio::task::JoinHandle<()>>> {
        let jobs = Jobs::new(app, cfg);
        jobs.prepare().await?;
        if !jobs.cfg.enabled {
            tracing::info!("background jobs are off ([jobs] enabled = false)");
            return Ok(None);
        }
        tracing::info!(
            purge_interval_secs = jobs.cfg.purge_interval_secs,
            cancellations_interval_secs = jobs.cfg.cancellations_interval_secs,
            incident_alarms_interval_secs = jobs.cfg.incident_alarms_interval_secs,
            "background jobs scheduled"
        );
        Ok(Some(tokio::spawn(async move {
            jobs.run_scheduled(&Job::ALL, std::future::pending()).await
        })))
    }

    /// Erases the accounts whose cooling-off period is over.
    async fn cancellations(&self) -> AppResult<Vec<ErasureReport>> {
        let done = self.app.rights.run_due_cancellations().await?;
        for r in &done {
            // The erasure reference and ticket, never the erased subject's id.
            tracing::info!(ticket_id = r.ticket_id, erasure_ref = %r.erasure_ref,
                partners_to_notify = r.partners_to_notify.len(), "carried out a due account cancellation");
        }
        Ok(done)
    }

    /// Deletes every record past the retention its purpose declares (see the module
    /// documentation for the map of stores). Takes no lock: call it through [`Jobs::run`].
    pub async fn purge(&self) -> AppResult<PurgeReport> {
        let k = &self.app.kernel;
        let db = &k.db;
        let now = k.clock.now_ms();
        let mut report = PurgeReport {
            partitions_created: self.prepare().await?,
            ..Default::default()
        };

        // Declared retention per purpose, as days from collection (None: runs from
        // account closure or withdrawal, met by erasure and withdrawal themselves).
        let regime = k.gate.regime();
        let declared: Vec<(String, Option<i64>)> = regime
            .current()
            .purposes()
            .iter()
            .map(|p| {
                let days = p
                    .retention
                    .filter(|r| r.from == RetentionFrom::Collection)
                    .map(|r| {
                        let mut days = r.days;
                        if p.data_use.starts_with("essential.service.security") {
                            days = days.max(custos_policy::validate::MIN_SECURITY_LOG_DAYS);
                        }
                        i64::from(days)
                    });
                (p.id.clone(), days)
            })
            .collect();
        let cutoff = |purpose: &str| {
            declared
                .iter()
                .find(|(id, _)| id == purpose)
                .and_then(|(_, d)| *d)
                .map(|d| now - d * DAY_MS)
        };

        // Personal fields: their own expiry, then the declared days from collection.
        report.add("personal_fields", k.personal.purge_expired(now).await?);
        for (purpose, _) in &declared {
            if let Some(before) = cutoff(purpose) {
                let n = retention::purge_fields_collected_before(db, purpose, before).await?;
                report.add("personal_fields", n);
            }
        }

        // Service and security logs: whole months first (PostgreSQL), then rows.
        let dropped =
            retention::drop_expired_event_partitions(db, now, crate::signals::MAX_AGE_MS + DAY_MS)
                .await?;
        for Dropped { name, rows } in dropped {
            report.add("service_events", rows);
            report.partitions_dropped.push(name);
        }
        report.add(
            "service_events",
            self.app.signals.events.purge_expired(now).await?,
        );
        for (purpose, _) in &declared {
            if let Some(before) = cutoff(purpose) {
                let n = retention::purge_events_before(db, purpose, before).await?;
                report.add("service_events", n);
            }
        }

        // Ad effectiveness events (de-identified, with the ads purpose's expiry).
        report.add("ad_events", self.app.signals.ads.purge_expired(now).await?);

        // Inbox messages: seal any stored in clear before sealing, then drop the old.
        let sealed = self.app.signals.seal_legacy_inbox().await?;
        if sealed > 0 {
            tracing::info!(
                job = "purge",
                messages = sealed,
                "sealed inbox messages stored in clear"
            );
        }
        let keep_ms = i64::from(self.cfg.inbox_retention_days.max(1)) * DAY_MS;
        report.add(
            "inbox_messages",
            self.app.signals.inbox.purge(now, now - keep_ms).await?,
        );

        // Sign-in records: codes, the SMS outbox, throttle counters, sessions, flows.
        let id = &self.app.identity;
        report.add(
            "sms_challenges",
            custos_store::identity::purge_challenges(db, now).await?,
        );
        report.add(
            "sms_outbox",
            id.gateway
                .purge(now)
                .map_err(|e| AppError::GatewayUnavailable(e.to_string()))?,
        );
        report.add(
            "throttle_events",
            custos_store::identity::purge_throttle(
                db,
                now - crate::identity::throttle::LONGEST_WINDOW_MS,
            )
            .await?,
        );
        report.add(
            "sessions",
            custos_store::identity::purge_sessions(
                db,
                now,
                i64::from(id.cfg.session_idle_days) * DAY_MS,
            )
            .await?,
        );
        report.add(
            "oidc_flows",
            custos_store::identity::purge_oidc_flows(db, now).await?,
        );

        // Bookmarks, downloads, shares, comments.
        report.add(
            "bookmarks_of_deleted_items",
            retention::delete_orphan_bookmarks(db).await?,
        );
        if let Some(before) = cutoff(INTERACTIONS_PURPOSE) {
            report.add(
                "interactions",
                retention::purge_interactions_before(db, before).await?,
            );
        }

        // Finished exports past their download window, then rights tickets and sent
        // partner notifications.
        report.add(
            "export_jobs",
            self.app.rights.purge_expired_exports().await?,
        );
        if let Some(before) = cutoff(RIGHTS_PURPOSE) {
            report.add(
                "rights_tickets",
                retention::purge_closed_tickets_before(db, before).await?,
            );
        }

        for p in report.purged.iter().filter(|p| p.rows > 0) {
            tracing::info!(
                job = "purge",
                store = p.store,
                rows = p.rows,
                "removed records past their retention"
            );
        }
        Ok(report)
    }
}

/// The purpose bookmarks, downloads, shares and comments are kept under.
pub const INTERACTIONS_PURPOSE: &str = "interactions";
/// The purpose rights tickets are kept under.
pub const RIGHTS_PURPOSE: &str = "rights_requests";

#[cfg(test)]
mod tests {
    use crate::config::FileConfig;

    #[test]
    fn jobs_settings_parse_with_defaults_and_unknown_keys_are_named() {
        let cfg: FileConfig = toml::from_str("[jobs]\npurge_interval_secs = 60\n").unwrap();
        assert_eq!(cfg.jobs.purge_interval_secs, 60);
        assert!(cfg.jobs.enabled);
        assert_eq!(cfg.jobs.cancellations_interval_secs, 600);
        let off: FileConfig = toml::from_str("[jobs]\nenabled = false\n").unwrap();
        assert!(!off.jobs.enabled);
        let e = toml::from_str::<FileConfig>("[jobs]\npurge_every = 3\n").unwrap_err();
        assert!(e.to_string().contains("purge_every"), "{e}");
    }
}
