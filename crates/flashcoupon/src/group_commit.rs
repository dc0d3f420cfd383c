//! Group commit: claims the gate admitted are written in batches, one
//! transaction per batch, and each claim is answered only after its batch
//! committed (promise 3).
//!
//! One writer task owns a dedicated SQLite connection. It waits for the first
//! pending claim, takes every other claim already queued (up to `max_batch`),
//! and commits them together: while one batch is being fsynced the next one
//! gathers, so batches grow with load and an idle system adds no delay.
//!
//! After a batch the writer settles every claim in the gate *before* replying:
//! a committed claim becomes a replayable idempotency answer, a failed one
//! gives its stock back (promise 5). Settling here rather than in the request
//! handler keeps it correct when the client disconnects mid-claim.

use std::sync::Arc;
use std::time::Instant;

use sqlx::SqliteConnection;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::gate::{CampaignGate, Ticket};
use crate::metrics::Metrics;
use crate::store::{NewCouponRow, Store};

/// Why an admitted claim did not become durable. Either way nothing was
/// issued and its stock is back in the pool.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the coupon could not be recorded: {0}")]
pub struct CommitFailed(pub String);

struct Pending {
    row: NewCouponRow,
    ticket: Ticket,
    gate: Arc<CampaignGate>,
    reply: oneshot::Sender<Result<(), CommitFailed>>,
}

/// The queue into the writer. Sending never awaits, so a request cancelled
/// after admission cannot leave a claim taken but never queued.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    queue: mpsc::UnboundedSender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("coupon", &self.row.id)
            .finish()
    }
}

/// Stops the writer once the queue is drained.
#[derive(Debug)]
pub struct WriterHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl WriterHandle {
    /// Refuse new claims, commit every queued one, then return.
    pub async fn drain(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

impl GroupCommit {
    pub fn start(
        conn: SqliteConnection,
        max_batch: usize,
        metrics: Metrics,
    ) -> (Self, WriterHandle) {
        let (queue, rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(writer(conn, rx, stop_rx, max_batch.max(1), metrics));
        (Self { queue }, WriterHandle { stop, task })
    }

    /// Queue an admitted claim; the receiver yields once it is durable or failed.
    pub fn submit(
        &self,
        gate: Arc<CampaignGate>,
        ticket: Ticket,
        row: NewCouponRow,
    ) -> oneshot::Receiver<Result<(), CommitFailed>> {
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError(p)) = self.queue.send(Pending {
            row,
            ticket,
            gate,
            reply,
        }) {
            // The writer is shutting down: nothing was written, give the stock back.
            p.gate.settle(p.ticket, None);
            let _ = p.reply.send(Err(CommitFailed("shutting down".into())));
        }
        answer
    }
}

async fn writer(
    mut conn: SqliteConnection,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    mut stop: watch::Receiver<bool>,
    max_batch: usize,
    metrics: Metrics,
) {
    let mut batch = Vec::with_capacity(max_batch);
    let mut stopping = false;
    loop {
        let first = tokio::select! {
            item = rx.recv() => match item {
                Some(item) => item,
                None => break,
            },
            _ = stop.changed(), if !stopping => {
                // Refuse new claims; what is queued still gets committed.
                stopping = true;
                rx.close();
                continue;
            }
        };
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        commit(&mut conn, &mut batch, &metrics).await;
    }
    tracing::info!("group commit drained");
}

async fn commit(conn: &mut SqliteConnection, batch: &mut Vec<Pending>, metrics: &Metrics) {
    let started = Instant::now();
    let rows: Vec<&NewCouponRow> = batch.iter().map(|p| &p.row).collect();
    let result = Store::insert_coupons(conn, &rows).await;
    metrics
        .commit_latency
        .observe(started.elapsed().as_secs_f64());
    metrics.commit_batch_size.observe(batch.len() as f64);
    match result {
        Ok(()) => batch.drain(..).for_each(|p| finish(p, Ok(()))),
        Err(err) if err.is_constraint() && batch.len() > 1 => {
            // One bad row must not fail its neighbours: retry them one by one
            // so only the rows the constraints reject are refused.
            tracing::error!(error = %err, size = batch.len(), "a batch broke a constraint; isolating the offending rows");
            for p in batch.drain(..) {
                let result = Store::insert_coupons(conn, &[&p.row]).await;
                if let Err(err) = &result {
                    // With a correct gate this never happens: it is the record
                    // refusing an over-issue or a limit breach (promise 7).
                    tracing::error!(error = %err, coupon = %p.row.id, seq = p.row.seq, "the record refused a coupon the gate admitted");
                }
                finish(p, result.map_err(|e| CommitFailed(e.to_string())));
            }
        }
        Err(err) => {
            tracing::error!(error = %err, size = batch.len(), "group commit failed; releasing the batch's stock");
            let failed = CommitFailed(err.to_string());
            batch.drain(..).for_each(|p| finish(p, Err(failed.clone())));
        }
    }
}

/// Settle the claim in the gate, then answer its request.
fn finish(p: Pending, result: Result<(), CommitFailed>) {
    p.gate
        .settle(p.ticket, result.as_ref().ok().map(|()| p.row.id));
    let _ = p.reply.send(result);
}
