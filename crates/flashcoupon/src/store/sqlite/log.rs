//! Keeping the write-ahead log short while the group commits never pause.
//!
//! SQLite starts its log over only when a write begins after a checkpoint
//! copied *every* frame into the database file. The store's upkeep copies
//! with a passive checkpoint every 500 ms, but during a storm the writers
//! append new frames while it copies, so that moment never comes: the log
//! grew by ~150 MB a second to 2–4 GB in a few seconds' drop (its file,
//! and the index SQLite searches on every page read, with it; see
//! docs/benchmarks.md).
//!
//! So: when the upkeep finds the log past [`LIMIT_FRAMES`], it copies again
//! until little came during its last pass and asks for a restart. The next
//! group-commit batch, on its writer thread and under its write turn (so no
//! other write of this process runs), first checks the rest of the log in
//! with `wal_checkpoint(RESTART)`, which also waits (briefly,
//! [`READER_WAIT`]) for readers still on the old log. Its own
//! transaction then starts the log over (writing over the frames already in
//! the file). A reader that keeps the log longer makes the checkpoint
//! answer busy: the batch goes on as usual and the upkeep asks again.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Past this many frames the log is started over (67 MB of a new
/// database's 1 KiB pages and their frame headers, 270 MB of an older
/// one's 4 KiB): a restart makes one batch wait for the last frames to be
/// copied and synced (0.06–58 ms measured, most under 15), so not too
/// often: every 1.5–2 s of a storm.
pub const LIMIT_FRAMES: i64 = 65_536;

/// What a restart cuts the log's file back to, if it grew past it
/// (`journal_size_limit`). Above what a storm's log reaches between two
/// restarts (the limit plus ~500 ms of writes, ~350 MB here): cutting
/// the file and growing it again costs the restarting batch tens of
/// milliseconds, where writing over frames already on disk costs nothing.
pub const FILE_LIMIT_BYTES: i64 = 512 * 1024 * 1024;

/// The upkeep copies the log again until no more than this many frames
/// came during its last pass (1 MiB), at most [`CATCH_UP_PASSES`] times
/// after the first.
pub const LEFT_FOR_THE_BATCH: i64 = 256;
pub const CATCH_UP_PASSES: usize = 8;

/// How long a restart waits for readers still on the old log before it
/// gives up until the upkeep asks again.
const READER_WAIT: Duration = Duration::from_millis(10);

/// The busy timeout of every connection of the store, restored after a
/// restart's shorter one.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Shared by the store's upkeep (which finds the log long) and its writer
/// threads (which start it over between two batches).
#[derive(Debug)]
pub struct LogLength {
    limit: AtomicI64,
    wanted: AtomicBool,
    restarts: AtomicU64,
}

impl Default for LogLength {
    fn default() -> Self {
        Self {
            limit: AtomicI64::new(LIMIT_FRAMES),
            wanted: AtomicBool::new(false),
            restarts: AtomicU64::new(0),
        }
    }
}

impl LogLength {
    /// A checkpoint found `frames` in the log: is it past the limit?
    pub fn too_long(&self, frames: i64) -> bool {
        frames >= self.limit.load(Ordering::Relaxed)
    }

    /// Ask the next batch to start the log over.
    pub fn want_restart(&self) {
        self.wanted.store(true, Ordering::Relaxed);
    }

    /// Before a batch's transaction, on its writer's connection, with the
    /// write turn held: start the log over if asked to. Asked once: if a
    /// reader keeps the log (or the checkpoint fails, which is not the
    /// batch's failure), the upkeep asks again at its next round, so a
    /// lasting reader costs one batch [`READER_WAIT`] a round, not every
    /// batch.
    pub fn restart_if_wanted(&self, conn: &rusqlite::Connection) {
        if !self.wanted.swap(false, Ordering::Relaxed) {
            return;
        }
        let started = std::time::Instant::now();
        match restart(conn) {
            Ok(true) => {
                self.restarts.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(took = ?started.elapsed(), "the write-ahead log starts over");
            }
            Ok(false) => tracing::debug!("a reader kept the write-ahead log; asked again later"),
            Err(e) => tracing::warn!(error = %e, "could not start the write-ahead log over"),
        }
    }

    /// How many times a writer has started the log over.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Start the log over past `frames` instead of [`LIMIT_FRAMES`].
    pub fn set_limit(&self, frames: i64) {
        self.limit.store(frames, Ordering::Relaxed);
    }
}

/// Copy the rest of the log and wait briefly for readers on it: `true` if
/// the next write starts the log over.
fn restart(conn: &rusqlite::Connection) -> rusqlite::Result<bool> {
    conn.busy_timeout(READER_WAIT)?;
    // (busy, frames in the log, frames copied): busy = 0 means every
    // frame is copied and no reader is left on the log.
    let done = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |row| {
        row.get::<_, i64>(0)
    });
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(done? == 0)
}
