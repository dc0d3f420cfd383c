//! Group commit: claims the gate admitted are written in batches, one
//! transaction per batch, and each claim is answered only after its batch
//! committed (promise 3).
//!
//! One writer task per instance owns a dedicated connection to the record. It waits for the first
//! pending claim, takes every other claim already queued (up to `max_batch`),
//! and commits them together: while one batch is being fsynced the next one
//! gathers, so batches grow with load and an idle system adds no delay.
//!
//! After a batch the writer settles every claim in the gate *before* replying:
//! a committed claim becomes a replayable idempotency answer, a failed one
//! gives its stock back (promise 5). Settling here rather than in the request
//! handler keeps it correct when the client disconnects mid-claim.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::domain::ids::CouponId;
use crate::gate::{Gate, Outcome, Ticket};
use crate::metrics::Metrics;
use crate::store::{CouponWriter, NewCouponRow};

/// Why an admitted claim did not become durable. Nothing was issued; its
/// stock is back in the pool, or will be once the reconciler has checked.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the coupon could not be recorded: {0}")]
pub struct CommitFailed(pub String);

struct Pending {
    row: NewCouponRow,
    queued: Instant,
    /// Taken by [`finish`]; if a `Pending` is dropped unfinished (a panic, the
    /// runtime shutting down) its `Drop` hands it to [`Gate::abandon`], so its
    /// stock, user slot and idempotency key are never stranded.
    ticket: Option<Ticket>,
    gate: Arc<dyn Gate>,
    reply: Option<oneshot::Sender<Result<(), CommitFailed>>>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.gate.abandon(ticket);
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
    gate: Arc<dyn Gate>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("coupon", &self.row.id)
            .finish()
    }
}

/// Stops the writers once the queue is drained.
#[derive(Debug)]
pub struct WriterHandle {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl WriterHandle {
    /// Refuse new claims, commit every queued one, then return.
    pub async fn drain(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// The queue, shared by the writers: a free writer takes everything queued.
type SharedQueue = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>>;

/// How the writer behaves.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    pub max_batch: usize,
    /// Claims queued longer than this are not written but failed: past it, a
    /// reconciler may already have given their stock back (scale-out).
    pub max_age: Option<Duration>,
}

impl GroupCommit {
    /// One writer task per connection in `writers`. SQLite takes one writer
    /// at a time, so embedded mode passes one; PostgreSQL commits concurrent
    /// transactions in parallel and merges their WAL flushes, so several
    /// writers let one batch gather while others commit.
    pub fn start(
        writers: Vec<Box<dyn CouponWriter>>,
        gate: Arc<dyn Gate>,
        config: WriterConfig,
        metrics: Metrics,
    ) -> (Self, WriterHandle) {
        let (queue, rx) = mpsc::unbounded_channel();
        let rx: SharedQueue = Arc::new(tokio::sync::Mutex::new(rx));
        let (stop, stop_rx) = watch::channel(false);
        let tasks = writers
            .into_iter()
            .map(|conn| {
                tokio::spawn(run_writer(
                    Writer {
                        conn,
                        gate: gate.clone(),
                        config: WriterConfig {
                            max_batch: config.max_batch.max(1),
                            ..config
                        },
                        metrics: metrics.clone(),
                    },
                    rx.clone(),
                    stop_rx.clone(),
                ))
            })
            .collect();
        (Self { queue, gate }, WriterHandle { stop, tasks })
    }

    /// Queue an admitted claim; the receiver yields once it is durable or failed.
    pub fn submit(
        &self,
        ticket: Ticket,
        row: NewCouponRow,
    ) -> oneshot::Receiver<Result<(), CommitFailed>> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            row,
            queued: Instant::now(),
            ticket: Some(ticket),
            gate: self.gate.clone(),
            reply: Some(reply),
        };
        // If the writer is gone the send fails, and dropping the returned
        // `Pending` abandons it: nothing was written.
        drop(self.queue.send(pending));
        answer
    }
}

struct Writer {
    conn: Box<dyn CouponWriter>,
    gate: Arc<dyn Gate>,
    config: WriterConfig,
    metrics: Metrics,
}

async fn run_writer(mut w: Writer, queue: SharedQueue, mut stop: watch::Receiver<bool>) {
    let mut batch = Vec::with_capacity(w.config.max_batch);
    let mut stopping = false;
    loop {
        {
            // Hold the queue while gathering a batch; commit after letting go,
            // so the next free writer gathers the next batch meanwhile.
            let mut rx = queue.lock().await;
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
            while batch.len() < w.config.max_batch {
                match rx.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
        }
        w.commit(&mut batch).await;
    }
    tracing::info!("group commit writer drained");
}

impl Writer {
    async fn commit(&mut self, batch: &mut Vec<Pending>) {
        let mut outcomes: Vec<(Pending, Result<(), CommitFailed>, Outcome)> = Vec::new();
        if let Some(max_age) = self.config.max_age {
            let (stale, fresh): (Vec<Pending>, Vec<Pending>) =
                batch.drain(..).partition(|p| p.queued.elapsed() > max_age);
            batch.extend(fresh);
            for p in stale {
                let failed = CommitFailed("the claim waited too long for the record".into());
                outcomes.push((p, Err(failed), Outcome::Failed));
            }
        }
        let started = Instant::now();
        let rows: Vec<&NewCouponRow> = batch.iter().map(|p| &p.row).collect();
        let result = if rows.is_empty() {
            Ok(HashSet::new())
        } else {
            self.conn.insert(&rows).await
        };
        self.metrics
            .commit_latency
            .observe(started.elapsed().as_secs_f64());
        self.metrics.commit_batch_size.observe(batch.len() as f64);
        match result {
            Ok(landed) => {
                for p in batch.drain(..) {
                    outcomes.push(landed_or_fenced(p, &landed));
                }
            }
            Err(err) if err.is_constraint() && batch.len() > 1 => {
                // One bad row must not fail its neighbours: retry them one by one
                // so only the rows the constraints reject are refused.
                tracing::error!(error = %err, size = batch.len(), "a batch broke a constraint; isolating the offending rows");
                for p in batch.drain(..) {
                    match self.conn.insert(&[&p.row]).await {
                        Ok(landed) => outcomes.push(landed_or_fenced(p, &landed)),
                        Err(err) => {
                            // With a correct gate this never happens: it is the
                            // record refusing an over-issue or a limit breach
                            // (promise 7). A constraint failure is certain: the
                            // row is not there.
                            tracing::error!(error = %err, coupon = %p.row.id, seq = p.row.seq, "the record refused a coupon the gate admitted");
                            let outcome = if err.is_constraint() {
                                Outcome::Refused
                            } else {
                                Outcome::Unknown
                            };
                            outcomes.push((p, Err(CommitFailed(err.to_string())), outcome));
                        }
                    }
                }
            }
            Err(err) => {
                // An I/O error can be reported for a COMMIT that did reach the
                // disk. Releasing such a coupon would re-offer its seq and key,
                // so ask the record which rows are there. If it cannot say, the
                // outcome is unknown: the gate keeps the claims in flight until
                // the record answers (the reconciler), or, in one process with
                // nobody to ask later, releases them.
                let rows: Vec<&NewCouponRow> = batch.iter().map(|p| &p.row).collect();
                let present = if err.is_constraint() {
                    // A lone row the record refused: certainly not there.
                    Ok(HashSet::new())
                } else {
                    self.conn.existing(&rows).await
                };
                tracing::error!(error = %err, size = batch.len(), landed = ?present.as_ref().map(HashSet::len).ok(), "group commit failed");
                let failed = CommitFailed(err.to_string());
                for p in batch.drain(..) {
                    let outcome = match &present {
                        Ok(present) if present.contains(&p.row.id) => {
                            let id = p.row.id;
                            outcomes.push((p, Ok(()), Outcome::Committed(id)));
                            continue;
                        }
                        Ok(_) if err.is_constraint() => Outcome::Refused,
                        Ok(_) => Outcome::Failed,
                        Err(_) => Outcome::Unknown,
                    };
                    outcomes.push((p, Err(failed.clone()), outcome));
                }
            }
        }
        self.finish(outcomes).await;
    }

    /// Settle every claim in the gate, then answer its request: settling
    /// first keeps it correct when the client already disconnected.
    async fn finish(&mut self, outcomes: Vec<(Pending, Result<(), CommitFailed>, Outcome)>) {
        let mut settle = Vec::with_capacity(outcomes.len());
        let mut replies = Vec::with_capacity(outcomes.len());
        for (mut p, result, outcome) in outcomes {
            if let Some(ticket) = p.ticket.take() {
                settle.push((ticket, outcome));
            }
            replies.push((p.reply.take(), result));
        }
        self.gate.settle(settle).await;
        for (reply, result) in replies {
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
        }
    }
}

/// A row of a batch that committed: it landed, or its gate generation was
/// fenced off (a rebuild happened since it was admitted) and it was skipped.
fn landed_or_fenced(
    p: Pending,
    landed: &HashSet<CouponId>,
) -> (Pending, Result<(), CommitFailed>, Outcome) {
    if landed.contains(&p.row.id) {
        let id = p.row.id;
        (p, Ok(()), Outcome::Committed(id))
    } else {
        let failed = CommitFailed("the gate was rebuilt while this claim was in flight".into());
        (p, Err(failed), Outcome::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::campaign::Campaign;
    use crate::domain::ids::UserId;
    use crate::domain::timestamp::Timestamp;
    use crate::gate::{Decision, MemoryGate};

    #[tokio::test]
    async fn a_claim_dropped_before_its_commit_gives_back_its_stock_and_key() {
        let campaign = Campaign::for_tests(1, 1);
        let gate = Arc::new(MemoryGate::default());
        gate.open(&campaign).await.unwrap();
        let user = UserId::generate();
        let claim = || {
            gate.claim(
                &campaign,
                user,
                CouponId::generate(),
                Some("k"),
                Timestamp(150),
            )
        };
        let Ok(Decision::Admitted(ticket)) = claim().await else {
            panic!("admitted")
        };
        assert_eq!(gate.stock(&campaign).await.unwrap().remaining, 0);
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
            gate_epoch: 0,
        };
        // As if the writer panicked or the runtime stopped with it queued.
        drop(Pending {
            row,
            queued: Instant::now(),
            ticket: Some(ticket),
            gate: gate.clone(),
            reply: Some(reply),
        });
        assert!(
            matches!(answer.try_recv(), Ok(Err(_))),
            "the request is told it failed"
        );
        let stock = gate.stock(&campaign).await.unwrap();
        assert_eq!((stock.remaining, stock.issued), (1, 0), "the stock is back");
        assert!(
            matches!(claim().await, Ok(Decision::Admitted(_))),
            "the key is free again, not stuck in flight"
        );
    }
}
