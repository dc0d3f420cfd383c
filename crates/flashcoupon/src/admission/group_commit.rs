//! Group commit: claims the gate admitted are written in batches, one
//! transaction per batch, and each claim is answered only after its batch
//! committed (promise 3). Generic over the [`Row`] a kind of stock writes
//! and the [`RowWriter`] that writes a batch of them.
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

use async_trait::async_trait;

use super::{Gate, Outcome, Ticket, UnitId};
use crate::metrics::Metrics;

/// One admitted unit, ready to be written by a [`RowWriter`].
pub trait Row: Send + Sync + 'static {
    /// The id it will have in the record (the one the gate was given).
    fn unit(&self) -> UnitId;
}

/// A batch write that did not answer "written".
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct WriteError {
    /// A constraint of the record refused it: certainly not written. Any
    /// other error may have come after a write that landed.
    pub refused: bool,
    /// Refused because the row names something unique that another row
    /// already holds (a unique code): the gate's decision was not wrong, so
    /// the unit's stock, slot and key simply go back (`Outcome::Failed`)
    /// rather than being held as a disagreement with the record.
    pub taken: bool,
    pub message: String,
}

impl WriteError {
    pub fn is_constraint(&self) -> bool {
        self.refused
    }
}

/// A group-commit writer's own connection to the record.
#[async_trait]
pub trait RowWriter<R: Row>: Send {
    /// Write one batch in one transaction: all rows or an error. Rows whose
    /// gate generation is stale are left out; the answer is what landed.
    async fn insert(&mut self, rows: &[&R]) -> Result<HashSet<UnitId>, WriteError>;
    /// Which of these units are in the record (to settle a batch whose
    /// commit reported an error: a COMMIT can fail to answer yet land).
    /// Waits for a transaction still writing them to finish first.
    async fn existing(&mut self, rows: &[&R]) -> Result<HashSet<UnitId>, WriteError>;
}

/// Why an admitted claim did not become durable. Nothing was issued; its
/// stock is back in the pool, or will be once the reconciler has checked.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct CommitFailed(pub String);

pub(super) struct Pending<R> {
    pub(super) row: R,
    pub(super) queued: Instant,
    /// Taken by [`finish`]; if a `Pending` is dropped unfinished (a panic, the
    /// runtime shutting down) its `Drop` hands it to [`Gate::abandon`], so its
    /// stock, user slot and idempotency key are never stranded.
    pub(super) ticket: Option<Ticket>,
    pub(super) gate: Arc<dyn Gate>,
    pub(super) reply: Option<oneshot::Sender<Result<(), CommitFailed>>>,
}

impl<R> Drop for Pending<R> {
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
pub struct GroupCommit<R> {
    queue: mpsc::UnboundedSender<Pending<R>>,
    gate: Arc<dyn Gate>,
}

// By hand: a derive would ask `R: Clone + Debug` for no reason.
impl<R> Clone for GroupCommit<R> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            gate: self.gate.clone(),
        }
    }
}

impl<R> std::fmt::Debug for GroupCommit<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
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
type SharedQueue<R> = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending<R>>>>;

/// How the writer behaves.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    pub max_batch: usize,
    /// Claims queued longer than this are not written but failed: past it, a
    /// reconciler may already have given their stock back (scale-out).
    pub max_age: Option<Duration>,
}

impl<R: Row> GroupCommit<R> {
    /// One writer task per connection in `writers`. SQLite takes one writer
    /// at a time, so embedded mode passes one; PostgreSQL commits concurrent
    /// transactions in parallel and merges their WAL flushes, so several
    /// writers let one batch gather while others commit.
    pub fn start(
        writers: Vec<Box<dyn RowWriter<R>>>,
        gate: Arc<dyn Gate>,
        config: WriterConfig,
        metrics: Metrics,
    ) -> (Self, WriterHandle) {
        let (queue, rx) = mpsc::unbounded_channel();
        let rx: SharedQueue<R> = Arc::new(tokio::sync::Mutex::new(rx));
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

    /// Is any writer still taking claims? (The queue closes when the last
    /// one stops: drained at shutdown, or dead.)
    pub fn writers_alive(&self) -> bool {
        !self.queue.is_closed()
    }

    /// Queue an admitted claim; the receiver yields once it is durable or failed.
    pub fn submit(&self, ticket: Ticket, row: R) -> oneshot::Receiver<Result<(), CommitFailed>> {
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

/// A claim of a batch with its answer and how the gate should settle it.
type Answered<R> = (Pending<R>, Result<(), CommitFailed>, Outcome);

struct Writer<R> {
    conn: Box<dyn RowWriter<R>>,
    gate: Arc<dyn Gate>,
    config: WriterConfig,
    metrics: Metrics,
}

async fn run_writer<R: Row>(
    mut w: Writer<R>,
    queue: SharedQueue<R>,
    mut stop: watch::Receiver<bool>,
) {
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

impl<R: Row> Writer<R> {
    async fn commit(&mut self, batch: &mut Vec<Pending<R>>) {
        let mut outcomes: Vec<Answered<R>> = Vec::new();
        if let Some(max_age) = self.config.max_age {
            let (stale, fresh): (Vec<Pending<R>>, Vec<Pending<R>>) =
                batch.drain(..).partition(|p| p.queued.elapsed() > max_age);
            batch.extend(fresh);
            for p in stale {
                let failed = CommitFailed("the claim waited too long for the record".into());
                outcomes.push((p, Err(failed), Outcome::Failed));
            }
        }
        let started = Instant::now();
        let rows: Vec<&R> = batch.iter().map(|p| &p.row).collect();
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
                        Err(err) if err.taken => {
                            // Certainly not there, and nothing the gate got wrong.
                            tracing::info!(error = %err, unit = %p.row.unit(), "a unit named something already taken");
                            outcomes.push((p, Err(CommitFailed(err.to_string())), Outcome::Failed));
                        }
                        Err(err) if err.is_constraint() => {
                            // With a correct gate this never happens: it is the
                            // record refusing an over-issue or a limit breach
                            // (promise 7). A constraint failure is certain: the
                            // row is not there.
                            tracing::error!(error = %err, unit = %p.row.unit(), seq = p.ticket.as_ref().map(|t| t.seq), "the record refused a unit the gate admitted");
                            outcomes.push((
                                p,
                                Err(CommitFailed(err.to_string())),
                                Outcome::Refused,
                            ));
                        }
                        Err(err) => {
                            // Not a refusal: the row may have landed. Ask.
                            let outcome = match self.conn.existing(&[&p.row]).await {
                                Ok(present) if present.contains(&p.row.unit()) => {
                                    let id = p.row.unit();
                                    outcomes.push((p, Ok(()), Outcome::Committed(id)));
                                    continue;
                                }
                                Ok(_) => Outcome::Failed,
                                Err(_) => Outcome::Unknown,
                            };
                            outcomes.push((p, Err(CommitFailed(err.to_string())), outcome));
                        }
                    }
                }
            }
            Err(err) => {
                // An I/O error can be reported for a COMMIT that did reach the
                // disk. Releasing such a unit would re-offer its seq and key,
                // so ask the record which rows are there. If it cannot say, the
                // outcome is unknown: the Redis gate keeps the claims in flight
                // until the record answers (the reconciler); the memory gate
                // keeps their seqs, slots and keys until the next start-up.
                let rows: Vec<&R> = batch.iter().map(|p| &p.row).collect();
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
                        Ok(present) if present.contains(&p.row.unit()) => {
                            let id = p.row.unit();
                            outcomes.push((p, Ok(()), Outcome::Committed(id)));
                            continue;
                        }
                        Ok(_) if err.taken => Outcome::Failed,
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
    async fn finish(&mut self, outcomes: Vec<Answered<R>>) {
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
fn landed_or_fenced<R: Row>(p: Pending<R>, landed: &HashSet<UnitId>) -> Answered<R> {
    let id = p.row.unit();
    if landed.contains(&id) {
        (p, Ok(()), Outcome::Committed(id))
    } else {
        let failed = CommitFailed("the gate was rebuilt while this claim was in flight".into());
        (p, Err(failed), Outcome::Failed)
    }
}
