//! Who writes to SQLite next: the group commit first, everything else after.
//!
//! SQLite has one writer at a time, and a writer that finds the lock taken
//! sleeps in growing steps (1, 2, 5, 10 … ms) before trying again: a claim
//! batch queued behind a background write could wait a hundred milliseconds
//! for a lock free after three. So every writer of this process takes a turn
//! here first and never meets SQLite's lock held. The group commit's turn is
//! *urgent*: an ordinary write (a mark-read, a sign-up, a spend) waits
//! while a batch is waiting or writing, so cheap authenticated writes
//! cannot slow a drop. A subscription toggled during a drop does not even
//! take a turn: it rides in the next batch's transaction
//! (`sqlite::writer::Riders`). Ordinary writes still go between batches: the
//! writer lets go of its turn while it gathers the next batch, and at most
//! the ordinary writes that got their turn before it asked again go first.
//! Under a storm the writer asks again at once, so it also hands one turn
//! over after [`MAX_STREAK`] batches in a row while an ordinary write
//! waits: a pause, a key deletion or a confirm waits a few batches, not the
//! whole drop.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Mutex, Notify, OwnedMutexGuard};

/// Batches that may go ahead of a waiting ordinary write, in a row.
pub const MAX_STREAK: usize = 4;
/// How long a batch waits at most for the ordinary write it hands over to
/// (it stops waiting sooner once none waits).
const HAND_OVER: std::time::Duration = std::time::Duration::from_millis(20);

/// The process's write turn, shared by the store and its group-commit writer.
#[derive(Debug, Default)]
pub struct WriteTurn {
    lock: Arc<Mutex<()>>,
    /// Urgent turns asked for and not yet given back (waiting or writing).
    urgent: AtomicUsize,
    /// Woken when `urgent` drops to zero.
    calm: Notify,
    /// Ordinary writes waiting for a turn.
    ordinary_waiting: AtomicUsize,
    /// Urgent turns taken in a row while an ordinary write waited.
    streak: AtomicUsize,
    /// Ordinary writes that got their turn so far.
    passed_count: AtomicUsize,
    /// Woken when an ordinary write gets its turn or stops waiting.
    passed: Notify,
}

/// One count in `ordinary_waiting`, given back when dropped: also when the
/// write stops waiting without its turn (cancelled, or a subscription that
/// a batch answered meanwhile), so a batch waiting to hand over to it
/// does not wait for nothing.
struct Waiting<'a>(&'a WriteTurn);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.ordinary_waiting.fetch_sub(1, Ordering::AcqRel);
        self.0.passed.notify_waiters();
    }
}

/// A turn: the write it guards may run until this is dropped. It owns what
/// it holds, so it can go with a job to the thread that writes: a caller
/// that is cancelled after handing the job over does not free the turn
/// while the write still runs.
#[derive(Debug)]
pub struct Turn {
    _lock: OwnedMutexGuard<()>,
    _urgent: Option<Urgent>,
}

/// One count in `urgent`, given back when dropped: also when the future
/// that asked is cancelled before its turn came.
#[derive(Debug)]
struct Urgent(Arc<WriteTurn>);

impl Drop for Urgent {
    fn drop(&mut self) {
        if self.0.urgent.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.calm.notify_waiters();
        }
    }
}

impl WriteTurn {
    pub fn shared() -> Arc<Self> {
        Arc::default()
    }

    /// The group commit's turn: ahead of every ordinary write not already
    /// writing (tokio's mutex is FIFO, and ordinary writes that reach it
    /// while this waits step aside at once).
    pub async fn urgent(self: &Arc<Self>) -> Turn {
        if self.ordinary_waiting.load(Ordering::Acquire) > 0 {
            if self.streak.fetch_add(1, Ordering::AcqRel) >= MAX_STREAK {
                // Not asking yet: the ordinary writes woken when the last
                // batch let go see no urgent turn and take theirs. Until
                // one has, or none waits any more, or the hand-over's time
                // is up.
                let handed = self.passed_count.load(Ordering::Acquire);
                let deadline = tokio::time::Instant::now() + HAND_OVER;
                loop {
                    let passed = self.passed.notified();
                    tokio::pin!(passed);
                    passed.as_mut().enable();
                    if self.ordinary_waiting.load(Ordering::Acquire) == 0
                        || self.passed_count.load(Ordering::Acquire) != handed
                        || tokio::time::timeout_at(deadline, passed).await.is_err()
                    {
                        break;
                    }
                }
                self.streak.store(0, Ordering::Release);
            }
        } else {
            self.streak.store(0, Ordering::Release);
        }
        self.urgent.fetch_add(1, Ordering::AcqRel);
        let urgent = Urgent(self.clone());
        Turn {
            _lock: self.lock.clone().lock_owned().await,
            _urgent: Some(urgent),
        }
    }

    /// Any other write's turn: once no urgent turn is waiting or writing.
    pub async fn ordinary(self: &Arc<Self>) -> Turn {
        self.ordinary_waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(self);
        loop {
            let calm = self.calm.notified();
            tokio::pin!(calm);
            // Register before looking, so a notification between the load
            // and the await is not lost.
            calm.as_mut().enable();
            if self.urgent.load(Ordering::Acquire) > 0 {
                calm.await;
                continue;
            }
            let lock = self.lock.clone().lock_owned().await;
            if self.urgent.load(Ordering::Acquire) == 0 {
                self.passed_count.fetch_add(1, Ordering::AcqRel);
                self.passed.notify_waiters();
                return Turn {
                    _lock: lock,
                    _urgent: None,
                };
            }
            // A batch asked while this queued: let it go first.
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Polls `fut` a few times on this task; true if it finished.
    async fn finishes<F: std::future::Future>(fut: F) -> bool {
        tokio::time::timeout(Duration::from_millis(50), fut)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_batch_goes_before_ordinary_writes_that_queued_first() {
        let turn = WriteTurn::shared();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let first = turn.ordinary().await;

        let mut waiting = Vec::new();
        for i in 0..3 {
            let (turn, order) = (turn.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let _t = turn.ordinary().await;
                order.lock().expect("order").push(format!("ordinary {i}"));
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // all three queued
        let batch = {
            let (turn, order) = (turn.clone(), order.clone());
            tokio::spawn(async move {
                let _t = turn.urgent().await;
                order.lock().expect("order").push("batch".to_owned());
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        batch.await.expect("batch");
        for w in waiting {
            w.await.expect("ordinary");
        }
        let order = order.lock().expect("order").clone();
        assert_eq!(order[0], "batch", "{order:?}");
        assert_eq!(order.len(), 4);
    }

    /// A writer under a storm asks for its next turn the moment it lets go
    /// of the last; an ordinary write still gets one within a few batches.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_writer_hands_a_turn_over_every_few_batches() {
        let turn = WriteTurn::shared();
        let batches = Arc::new(AtomicUsize::new(0));
        let writer = {
            let (turn, batches) = (turn.clone(), batches.clone());
            tokio::spawn(async move {
                for _ in 0..200 {
                    let _t = turn.urgent().await;
                    std::thread::sleep(Duration::from_millis(1)); // the commit
                    batches.fetch_add(1, Ordering::AcqRel);
                }
            })
        };
        while batches.load(Ordering::Acquire) < 3 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let asked_at = batches.load(Ordering::Acquire);
        let _t = turn.ordinary().await;
        let got_at = batches.load(Ordering::Acquire);
        assert!(
            got_at - asked_at <= MAX_STREAK + 2,
            "waited {} batches",
            got_at - asked_at
        );
        drop(_t);
        writer.await.expect("writer");
        assert_eq!(
            turn.ordinary_waiting.load(Ordering::Acquire),
            0,
            "count leaked"
        );
    }

    #[tokio::test]
    async fn ordinary_writes_wait_while_a_batch_writes_and_go_after() {
        let turn = WriteTurn::shared();
        let batch = turn.urgent().await;
        assert!(!finishes(turn.ordinary()).await, "went during a batch");
        drop(batch);
        assert!(
            finishes(turn.ordinary()).await,
            "never went after the batch"
        );
        // Batches take turns among themselves too.
        let one = turn.urgent().await;
        assert!(!finishes(turn.urgent()).await, "two batches at once");
        assert_eq!(
            turn.urgent.load(Ordering::Acquire),
            1,
            "a cancelled ask leaked"
        );
        drop(one);
        assert!(finishes(turn.urgent()).await);
        assert_eq!(turn.urgent.load(Ordering::Acquire), 0, "count leaked");
    }

    /// A batch due to hand a turn over to an ordinary write does not wait
    /// the hand-over out when that write stops waiting without its turn
    /// (cancelled, or answered by a batch it rode in): it goes as soon as
    /// nobody waits. In the runtime's virtual time, so nothing here
    /// depends on the machine's speed.
    #[tokio::test(start_paused = true)]
    async fn a_batch_does_not_wait_for_a_write_that_stopped_waiting() {
        let turn = WriteTurn::shared();
        let first = turn.urgent().await;
        // An ordinary write waits behind a storm of batches.
        let waiter = tokio::spawn({
            let turn = turn.clone();
            async move {
                let _t = turn.ordinary().await;
            }
        });
        tokio::task::yield_now().await;
        assert_eq!(turn.ordinary_waiting.load(Ordering::Acquire), 1);
        turn.streak.store(MAX_STREAK, Ordering::Release);
        // The next batch is due to hand over and waits for the write...
        let next = tokio::spawn({
            let turn = turn.clone();
            async move {
                let asked = tokio::time::Instant::now();
                let _t = turn.urgent().await;
                asked.elapsed()
            }
        });
        tokio::task::yield_now().await;
        // ...which stops waiting without its turn.
        waiter.abort();
        assert!(waiter.await.is_err_and(|e| e.is_cancelled()));
        drop(first);
        let waited = next.await.expect("batch");
        assert!(
            waited < HAND_OVER,
            "waited {waited:?} for a write that left"
        );
        assert_eq!(turn.ordinary_waiting.load(Ordering::Acquire), 0);
    }
}
