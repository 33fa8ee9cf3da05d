//! Group commit for the consent ledger, and cross-process catch-up.
//!
//! Requests from concurrent handlers queue on a channel; one task drains what is
//! waiting (up to [`MAX_BATCH`] decisions), appends it in one transaction, folds the new
//! records into the gate and answers each request. One commit then serves many requests,
//! which is what lets SQLite record thousands of decisions per second.
//!
//! On PostgreSQL a second task listens on [`ledger::NOTIFY_CHANNEL`]; every notification
//! (and every reconnect) makes it read the records after the last one it applied, so a
//! decision recorded by another process reaches this process's gate within milliseconds.
//! Writes of personal data also compare the ledger in the same database round trip
//! (see `PersonalStore::put`), so a withdrawal is honoured even before the notice arrives.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use custos_core::{ConsentRecord, Gate};
use custos_store::ledger::{self, NewDecision};
use custos_store::Db;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;

/// Decisions per transaction at most.
pub const MAX_BATCH: usize = 2_000;

type Reply = oneshot::Sender<Result<Vec<ConsentRecord>, String>>;

pub(crate) struct LedgerWriter {
    tx: mpsc::Sender<(Vec<NewDecision>, Reply)>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl LedgerWriter {
    pub(crate) fn start(db: Db, gate: Arc<Gate>, start_seq: i64) -> LedgerWriter {
        let (tx, rx) = mpsc::channel(4_096);
        let applied = Arc::new(AtomicI64::new(start_seq));
        let mut tasks = vec![tokio::spawn(write_loop(
            db.clone(),
            gate.clone(),
            rx,
            applied.clone(),
        ))];
        if db.backend() == custos_store::Backend::Postgres {
            tasks.push(tokio::spawn(ledger::follow(db, applied, move |recs| {
                gate.apply_all(recs)
            })));
        }
        LedgerWriter {
            tx,
            tasks: Mutex::new(tasks),
        }
    }

    /// Appends one request's decisions; resolves when they are committed and in the gate.
    pub(crate) async fn append(
        &self,
        batch: Vec<NewDecision>,
    ) -> Result<Vec<ConsentRecord>, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((batch, reply))
            .await
            .map_err(|_| "the ledger writer has stopped".to_string())?;
        rx.await
            .map_err(|_| "the ledger writer has stopped".to_string())?
    }

    /// Ties another background task to the writer's lifetime.
    pub(crate) async fn adopt(&self, task: JoinHandle<()>) {
        self.tasks.lock().await.push(task);
    }

    pub(crate) async fn stop(&self) {
        for t in self.tasks.lock().await.drain(..) {
            t.abort();
        }
    }
}

async fn write_loop(
    db: Db,
    gate: Arc<Gate>,
    mut rx: mpsc::Receiver<(Vec<NewDecision>, Reply)>,
    applied: Arc<AtomicI64>,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let mut total = jobs[0].0.len();
        while total < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => {
                    total += job.0.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let all: Vec<NewDecision> = jobs.iter().flat_map(|(b, _)| b.iter().cloned()).collect();
        match ledger::append(&db, &all).await {
            Ok(records) => {
                gate.apply_all(&records);
                // When this batch directly follows everything applied so far, the follower
                // need not read it back; after a gap it must (another process wrote there).
                if let (Some(first), Some(last)) = (records.first(), records.last()) {
                    let _ = applied.compare_exchange(
                        first.seq - 1,
                        last.seq,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                }
                let mut rest = records.into_iter();
                for (batch, reply) in jobs {
                    let mine: Vec<ConsentRecord> = rest.by_ref().take(batch.len()).collect();
                    let _ = reply.send(Ok(mine));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, decisions = all.len(), "ledger append failed");
                for (_, reply) in jobs {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }
}
