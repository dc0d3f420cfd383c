//! The inbox writer: pushed events are stored in batches, off the claim
//! path, so a storm of claims costs the record one insert per batch rather
//! than one per event.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::store::NotificationRow;
use crate::store::Store;

/// Events waiting to be stored; beyond this the newest are not kept (the
/// push still happens).
const QUEUE: usize = 100_000;
/// Rows per insert. Each insert is a transaction of its own (an fsync in
/// embedded mode) and holds SQLite's write turn while it runs, so a claim
/// batch may wait behind one: big enough to amortise the commit, small enough
/// to keep that wait to milliseconds.
const BATCH: usize = 1_024;
/// After a first row arrives, wait this long for more before writing.
const GATHER: Duration = Duration::from_millis(50);
const ATTEMPTS: u32 = 3;

#[derive(Debug)]
enum Job {
    Store(NotificationRow),
    /// Write everything queued before this, then answer.
    Flush(oneshot::Sender<()>),
}

#[derive(Debug, Clone)]
pub(super) struct InboxWriter {
    tx: mpsc::Sender<Job>,
}

impl InboxWriter {
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write(store, rx));
        Self { tx }
    }

    pub fn store(&self, row: NotificationRow) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(Job::Store(row)) {
            tracing::debug!("inbox queue full; an event was pushed but not stored");
        }
    }

    /// Wait until everything queued so far is written (at shutdown).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.tx.send(Job::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

async fn write(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(BATCH);
    let mut rows = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut jobs, BATCH).await > 0 {
        if jobs.len() < BATCH && matches!(jobs.last(), Some(Job::Store(_))) {
            tokio::time::sleep(GATHER).await;
            let room = BATCH - jobs.len();
            if room > 0 && !rx.is_empty() {
                rx.recv_many(&mut jobs, room).await;
            }
        }
        let mut flushed = Vec::new();
        for job in jobs.drain(..) {
            match job {
                Job::Store(row) => rows.push(row),
                Job::Flush(done) => flushed.push(done),
            }
        }
        insert(&*store, &rows).await;
        rows.clear();
        for done in flushed {
            let _ = done.send(());
        }
    }
}

async fn insert(store: &dyn Store, rows: &[NotificationRow]) {
    if rows.is_empty() {
        return;
    }
    for attempt in 1..=ATTEMPTS {
        match store.insert_notifications(rows).await {
            Ok(_) => return,
            Err(e) if attempt == ATTEMPTS => {
                tracing::warn!(error = %e, lost = rows.len(), "could not store notifications");
            }
            Err(e) => {
                tracing::debug!(error = %e, "storing notifications failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
        }
    }
}
