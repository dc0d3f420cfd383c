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
    /// Taken by [`finish`]; if a `Pending` is dropped unfinished (a panic, the
    /// runtime shutting down) its `Drop` settles it as failed, so its stock,
    /// user slot and idempotency key are never stranded.
    ticket: Option<Ticket>,
    gate: Arc<CampaignGate>,
    reply: Option<oneshot::Sender<Result<(), CommitFailed>>>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.gate.settle(ticket, None);
            if let Some(reply) = self.reply.take() {
                let _ = reply.send(Err(CommitFailed(
                    "the writer stopped before committing".into(),
                )));
            }
        }
    }
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
        let pending = Pending {
            row,
            ticket: Some(ticket),
            gate,
            reply: Some(reply),
        };
        // If the writer is gone the send fails, and dropping the returned
        // `Pending` settles it as failed: nothing was written, the stock is back.
        drop(self.queue.send(pending));
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
            // An I/O error can be reported for a COMMIT that did reach the
            // disk (e.g. a failed fsync after the write). Releasing such a
            // coupon would re-offer its seq and key forever, so ask the record
            // which rows are there; only the absent ones go back to the pool.
            let ids: Vec<_> = batch.iter().map(|p| p.row.id).collect();
            let present = Store::existing_coupons(conn, &ids)
                .await
                .unwrap_or_default();
            tracing::error!(error = %err, size = batch.len(), landed = present.len(), "group commit failed; releasing what did not land");
            let failed = CommitFailed(err.to_string());
            for p in batch.drain(..) {
                let result = if present.contains(&p.row.id) {
                    Ok(())
                } else {
                    Err(failed.clone())
                };
                finish(p, result);
            }
        }
    }
}

/// Settle the claim in the gate, then answer its request.
fn finish(mut p: Pending, result: Result<(), CommitFailed>) {
    if let Some(ticket) = p.ticket.take() {
        p.gate
            .settle(ticket, result.as_ref().ok().map(|()| p.row.id));
    }
    if let Some(reply) = p.reply.take() {
        let _ = reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::campaign::Campaign;
    use crate::domain::ids::{CouponId, UserId};
    use crate::domain::timestamp::Timestamp;
    use crate::gate::Admission;

    #[test]
    fn a_claim_dropped_before_its_commit_gives_back_its_stock_and_key() {
        let campaign = Campaign::for_tests(1, 1);
        let gate = Arc::new(CampaignGate::new(&campaign));
        let user = UserId::generate();
        let Admission::Admitted(ticket) = gate.claim(user, Some("k"), Timestamp(150)) else {
            panic!("admitted")
        };
        assert_eq!(gate.remaining(), 0);
        let (reply, mut answer) = oneshot::channel();
        let row = NewCouponRow {
            id: CouponId::generate(),
            campaign_id: campaign.id,
            user_id: user,
            seq: ticket.seq,
            user_seq: ticket.user_seq,
            idempotency_key: ticket.key.clone(),
            issued_at: Timestamp(50),
            valid_from: Timestamp(50),
            valid_until: Timestamp(60),
        };
        // As if the writer panicked or the runtime stopped with it queued.
        drop(Pending {
            row,
            ticket: Some(ticket),
            gate: gate.clone(),
            reply: Some(reply),
        });
        assert!(
            matches!(answer.try_recv(), Ok(Err(_))),
            "the request is told it failed"
        );
        assert_eq!(
            (gate.remaining(), gate.issued()),
            (1, 0),
            "the stock is back"
        );
        assert!(
            matches!(
                gate.claim(user, Some("k"), Timestamp(150)),
                Admission::Admitted(_)
            ),
            "the key is free again, not stuck in flight"
        );
    }
}
