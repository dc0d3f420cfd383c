//! The points group commit: ledger writes of many requests gathered into
//! one transaction, each in a savepoint of its own, so they share one
//! commit (one sync of SQLite's log) instead of paying one each. Where the
//! record runs transactions side by side (PostgreSQL) a write goes straight
//! to it instead (`Store::batches_ledger_writes`).
//!
//! A write's answer is exactly what it would have been alone: each is
//! decided in its savepoint on what the ones before it in the batch wrote
//! (two writes of one user see each other), and one that is not `Done`
//! leaves no trace. A batch the record refuses as a whole (an error, not an
//! answer) is written again one by one, so one bad write fails alone; every
//! write is safe to repeat (a reference or an order finds its first time, a
//! hold or a lot ends once), so neither can a commit whose outcome was lost.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::store::{LedgerWrite, Store, StoreError, Written};
use crate::tasks::{Shutdown, Tasks};

/// Writes gathered at most into one transaction.
/// Small enough that a batch holds SQLite's write turn a few milliseconds
/// at most: the coupon group commit waits behind it (`store::write_turn`).
const MAX_BATCH: usize = 16;
/// Writes waiting for the writer before callers wait to queue.
const QUEUE: usize = 4_096;

type Answer = oneshot::Sender<Result<Written, StoreError>>;

/// What to do once a write is committed (or refused), run with the commit
/// rather than by the caller, who may have gone (a cancelled request).
pub type After = Box<dyn FnOnce(&Written) + Send>;

/// A queued write: what to write, what to do after, whom to answer.
type Job = (LedgerWrite, After, Answer);

/// Hands ledger writes to the batching writer, or straight to the record.
#[derive(Debug, Clone)]
pub struct LedgerWriter {
    store: Arc<dyn Store>,
    queue: Option<mpsc::Sender<Job>>,
}

impl LedgerWriter {
    /// The writer for `store`; a batching one runs in `tasks`.
    pub fn start(store: Arc<dyn Store>, tasks: &mut Tasks) -> Self {
        if !store.batches_ledger_writes() {
            return Self { store, queue: None };
        }
        let (queue, rx) = mpsc::channel(QUEUE);
        tasks.spawn(
            "points group commit",
            run(store.clone(), rx, tasks.shutdown()),
        );
        Self {
            store,
            queue: Some(queue),
        }
    }

    /// Write `w` (alone, or in the next batch), run `after` on how it
    /// ended, and answer that.
    pub async fn write(&self, w: LedgerWrite, after: After) -> Result<Written, StoreError> {
        let Some(queue) = &self.queue else {
            return direct(&*self.store, &w, after).await;
        };
        let (answer, answered) = oneshot::channel();
        if let Err(mpsc::error::SendError((w, after, _))) = queue.send((w, after, answer)).await {
            // The writer has stopped (shutting down): write it here.
            return direct(&*self.store, &w, after).await;
        }
        match answered.await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Db(sqlx::Error::WorkerCrashed)),
        }
    }
}

/// `w` in a transaction of its own, then `after`.
async fn direct(store: &dyn Store, w: &LedgerWrite, after: After) -> Result<Written, StoreError> {
    let written = store.write_points(w).await?;
    after(&written);
    Ok(written)
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Job>, mut shutdown: Shutdown) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let got = tokio::select! {
            got = rx.recv_many(&mut batch, MAX_BATCH) => got,
            // Shutting down: take no more (a late write goes straight to
            // the record), finish what is queued, then stop.
            () = shutdown.begun(), if !shutdown.is_begun() => {
                rx.close();
                continue;
            }
        };
        if got == 0 {
            return;
        }
        // One user's writes in the order they came (a sort by user alone is
        // stable), users in one order for every batch.
        batch.sort_by_key(|(w, _, _): &Job| w.user);
        let writes: Vec<&LedgerWrite> = batch.iter().map(|(w, _, _)| w).collect();
        let written = if writes.len() == 1 {
            store.write_points(writes[0]).await.map(|w| vec![w])
        } else {
            store.write_points_many(&writes).await
        };
        match written {
            Ok(written) => {
                for ((_, after, answer), w) in batch.drain(..).zip(written) {
                    after(&w);
                    let _ = answer.send(Ok(w));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some((_, _, answer)) = batch.pop() {
                    let _ = answer.send(Err(e));
                }
            }
            Err(e) => {
                // Every write is safe to repeat (a reference or an order
                // finds its first time, a hold or a lot ends once), so this
                // is right even if the batch's commit did land: such a
                // write answers as a repeat.
                tracing::warn!(error = %e, "a batch of ledger writes failed; writing them one by one");
                for (w, after, answer) in batch.drain(..) {
                    let result = if e.is_unavailable() {
                        // The record is unreachable: every write of the
                        // batch is told so now (a 503 to retry), rather
                        // than each waiting out its own try.
                        Err(StoreError::Db(sqlx::Error::PoolTimedOut))
                    } else {
                        direct(&*store, &w, after).await
                    };
                    let _ = answer.send(result);
                }
            }
        }
    }
}
