//! The group-commit writers on SQLite: an OS thread of its own owns a
//! `rusqlite` connection and writes each batch (coupons, or a sale's
//! orders with their coupon and points holds) in one transaction with
//! cached prepared statements.
//!
//! Why not the sqlx pool's connection: sqlx runs every SQLite statement on
//! a worker thread and wakes the calling task for each answer, so a batch
//! of a BEGIN, a few multi-row INSERTs and a COMMIT was a dozen thread
//! hand-offs. Here a batch is one hand-off there and one back: the same
//! rows committed in 2.7 ms a batch instead of 4.0–4.5 ms (issue 17's runs
//! in docs/benchmarks.md; the rest is SQLite writing pages and the fsync).
//! An order's step is a dozen statements (the points ledger's among them):
//! the same functions as on the sqlx connections run here over
//! [`Rusqlite`], one hand-off a batch instead of one a statement.
//!
//! [`Batches`] is the writing itself, callable from any thread:
//! `examples/record_ceiling.rs` drives it directly to measure what the
//! record can do with no server around it.
//!
//! Small ordinary writes (a subscription toggled; one data-changing
//! statement, no transaction control) ride along: [`Riders`] queue their
//! statements, and the next transaction of either writer thread runs them,
//! each in a savepoint of its own, just before its COMMIT; each is
//! answered once that transaction has ended. While a drop is on (a batch
//! committed in the last 50 ms) a rider waits up to 20 ms for the next
//! batch, so it costs the batch a few microseconds of statement rather
//! than a turn, a commit and an fsync of its own between two batches
//! (issue 12's abuse benchmark: toggling cost the claims' p99 ~1–1.5 ms).
//! Otherwise its caller asks for an ordinary turn and has the checkout's
//! thread commit what waits, unless a batch takes it first.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::LogLength;
use crate::domain::ids::{CouponId, OrderId};
use crate::settings::Durability;
use crate::store::coupons::issued_outbox;
use crate::store::outbox::insert_outbox;
use crate::store::sql::{Arg, Rusqlite, Sql, run_now};
use crate::store::write_turn::{Turn, WriteTurn};
use crate::store::{Applied, CouponWriter, InboundItem, NewCouponRow, NewOrderRow, StoreError};

const INSERT_COUPON: &str = "INSERT INTO coupons (id, campaign_id, user_id, seq, user_seq, \
     idempotency_key, issued_at, valid_from, valid_until, code) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// One connection to the database file, set up like the pool's, writing
/// the group commit's batches.
#[derive(Debug)]
pub struct Batches {
    conn: Connection,
    /// Also write each coupon's `coupon.issued` to the outbox.
    outbound: bool,
    /// Start the log over between two batches when it grew too long.
    log: Arc<LogLength>,
    /// Small writes that ride in this writer's next transaction.
    riders: Arc<Riders>,
}

/// One small write waiting for a transaction to ride in.
#[derive(Debug)]
struct Rider {
    /// To find it again if its caller has to take it back.
    id: u64,
    sql: String,
    args: Vec<Arg>,
    /// How many rows it changed, once the transaction it rode in committed.
    reply: Reply,
}

/// The small writes waiting to ride in the next transaction of a writer
/// thread (shared by both threads of a store: whichever commits first
/// takes them).
#[derive(Debug)]
pub(super) struct Riders {
    waiting: Mutex<Vec<Rider>>,
    next_id: AtomicU64,
    /// When a group-commit batch last committed, in milliseconds from
    /// `born` (0: never): a drop is on while batches keep coming.
    last_batch_ms: AtomicU64,
    born: Instant,
}

impl Default for Riders {
    fn default() -> Self {
        Self {
            waiting: Mutex::default(),
            next_id: AtomicU64::default(),
            last_batch_ms: AtomicU64::default(),
            born: Instant::now(),
        }
    }
}

/// A batch committed this recently means a drop is on: a rider waits up
/// to [`RIDE_WAIT`] for the next one instead of a turn and a commit of its
/// own between two batches (which is what cost the claims' p99).
const DROP_ON: Duration = Duration::from_millis(50);
/// How long a rider waits for a batch while a drop is on.
const RIDE_WAIT: Duration = Duration::from_millis(20);

impl Riders {
    /// A group-commit batch has committed.
    fn batch_committed(&self) {
        let ms = self.born.elapsed().as_millis() as u64 + 1;
        self.last_batch_ms.store(ms, Ordering::Relaxed);
    }

    /// Has a batch committed within [`DROP_ON`]?
    fn drop_on(&self) -> bool {
        let last = self.last_batch_ms.load(Ordering::Relaxed);
        last > 0
            && (self.born.elapsed().as_millis() as u64 + 1).saturating_sub(last)
                <= DROP_ON.as_millis() as u64
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Rider>> {
        // A panic elsewhere cannot leave the list half-changed: a push, a
        // take or a removal.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue a statement; its answer comes once a transaction that ran it
    /// has ended.
    fn push(
        &self,
        sql: String,
        args: Vec<Arg>,
    ) -> (u64, oneshot::Receiver<Result<u64, StoreError>>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        self.queue().push(Rider {
            id,
            sql,
            args,
            reply,
        });
        (id, answer)
    }

    /// Take rider `id` back if no transaction has taken it yet.
    fn withdraw(&self, id: u64) -> bool {
        let mut queue = self.queue();
        let before = queue.len();
        queue.retain(|r| r.id != id);
        queue.len() < before
    }

    fn is_empty(&self) -> bool {
        self.queue().is_empty()
    }

    /// Run the waiting riders (the first [`RIDERS_PER_TRANSACTION`])
    /// inside `tx`, each in a savepoint of its own
    /// (one that fails leaves nothing and is answered with its error): the
    /// answers, to send once the transaction has ended. Only an error of
    /// the savepoints themselves (the transaction is broken) is the
    /// caller's; its riders are answered with it.
    fn ride(&self, tx: &Connection) -> Result<Answers, StoreError> {
        // A bounded share a transaction, so a flood of toggles cannot
        // lengthen one batch without end: the rest wait for the next.
        let riders: Vec<Rider> = {
            let mut queue = self.queue();
            let n = queue.len().min(RIDERS_PER_TRANSACTION);
            queue.drain(..n).collect()
        };
        let mut answers = Answers(Vec::with_capacity(riders.len()));
        let mut riders = riders.into_iter();
        for r in riders.by_ref() {
            let run = || -> Result<Result<u64, StoreError>, StoreError> {
                tx.execute_batch("SAVEPOINT rider")?;
                match run_now(Rusqlite(tx).execute(&r.sql, r.args)) {
                    Ok(changed) => {
                        tx.execute_batch("RELEASE rider")?;
                        Ok(Ok(changed))
                    }
                    // SQLite rolled the whole transaction back (disk full,
                    // I/O): the batch's error too, named as it is.
                    Err(broken) if tx.is_autocommit() => Err(broken),
                    Err(refused) => {
                        tx.execute_batch("ROLLBACK TO rider; RELEASE rider")?;
                        Ok(Err(refused))
                    }
                }
            };
            match run() {
                Ok(changed) => answers.0.push((r.reply, changed)),
                Err(broken) => {
                    // This one and those not run yet share the
                    // transaction's fate: not committed.
                    answers.0.push((r.reply, Ok(0)));
                    answers.0.extend(riders.map(|r| (r.reply, Ok(0))));
                    answers.end(Err(&broken));
                    return Err(broken);
                }
            }
        }
        Ok(answers)
    }
}

/// Riders one transaction takes at most.
const RIDERS_PER_TRANSACTION: usize = 64;

/// Takes a rider back if its caller goes away before a transaction took
/// it: a toggle whose request was dropped does not land later.
struct Withdraw<'a> {
    riders: &'a Riders,
    id: u64,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        self.riders.withdraw(self.id);
    }
}

/// Where a rider's answer goes.
type Reply = oneshot::Sender<Result<u64, StoreError>>;

/// Riders' answers, sent when their transaction has ended.
#[derive(Debug)]
#[must_use = "riders wait for their answers"]
struct Answers(Vec<(Reply, Result<u64, StoreError>)>);

impl Answers {
    /// Answer every rider: its own result if the transaction committed,
    /// the transaction's error if not.
    fn end(self, committed: Result<(), &StoreError>) {
        for (reply, changed) in self.0 {
            let _ = reply.send(match committed {
                Ok(()) => changed,
                Err(e) => Err(not_committed(e)),
            });
        }
    }
}

/// A rider's answer when the transaction it rode in did not commit, or
/// may not have (a COMMIT's error: its write is then as unknown as the
/// batch's).
fn not_committed(e: &StoreError) -> StoreError {
    StoreError::Db(sqlx::Error::Protocol(format!(
        "the transaction this write rode in did not commit, or may not have: {e}"
    )))
}

impl Batches {
    /// Open the (already migrated) database at `path`.
    pub fn open(
        path: &Path,
        durability: Durability,
        outbound: bool,
        log: Arc<LogLength>,
    ) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(super::log::BUSY_TIMEOUT)?;
        // An order with a coupon and points runs about twenty distinct
        // statements (the default cache keeps 16).
        conn.set_prepared_statement_cache_capacity(64);
        let _: String =
            conn.pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))?;
        conn.pragma_update(
            None,
            "synchronous",
            match durability {
                Durability::Full => "FULL",
                Durability::Normal => "NORMAL",
            },
        )?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "temp_store", "memory")?;
        // Checkpoints run in the store's upkeep, never inside a batch (a
        // long log's restart runs before one: `Batches::begin`).
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", super::log::FILE_LIMIT_BYTES)?;
        Ok(Self {
            conn,
            outbound,
            log,
            riders: Default::default(),
        })
    }

    /// Take small writes from `riders` (a store's, shared with its other
    /// writer thread) into this writer's transactions.
    pub(super) fn take_riders_from(&mut self, riders: Arc<Riders>) {
        self.riders = riders;
    }

    /// Run `work` in one `BEGIN IMMEDIATE` transaction, committed (with
    /// the riders waiting by then) if it answers `Ok`, rolled back (as the
    /// transaction drops) if not.
    fn in_transaction<T>(
        &mut self,
        work: impl FnOnce(&mut Rusqlite<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let riders = self.riders.clone();
        let tx = self.begin()?;
        let out = work(&mut Rusqlite(&tx))?;
        commit_with(tx, &riders)?;
        Ok(out)
    }

    /// Commit the small writes waiting, if any, in a transaction of their
    /// own (no batch came to take them).
    fn commit_riders(&mut self) -> Result<(), StoreError> {
        if self.riders.is_empty() {
            return Ok(());
        }
        self.in_transaction(|_| Ok(()))
    }

    /// A batch's `BEGIN IMMEDIATE`, the log started over first if the
    /// upkeep asked (the caller holds the write turn: nothing else of this
    /// process writes meanwhile).
    fn begin(&mut self) -> Result<rusqlite::Transaction<'_>, StoreError> {
        self.log.restart_if_wanted(&self.conn);
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    /// Write one batch in one transaction: every row or none.
    pub fn insert(&mut self, rows: &[NewCouponRow]) -> Result<(), StoreError> {
        let outbound = self.outbound;
        self.in_transaction(|db| {
            let mut coupon = db.0.prepare_cached(INSERT_COUPON)?;
            for r in rows {
                coupon.execute(params![
                    r.id.to_string(),
                    r.campaign_id.to_string(),
                    r.user_id.to_string(),
                    r.seq,
                    r.user_seq,
                    r.idempotency_key.as_deref(),
                    r.issued_at.0,
                    r.valid_from.0,
                    r.valid_until.0,
                    r.code.as_deref(),
                ])?;
            }
            if outbound {
                // The batch's `coupon.issued` events, as every other writer
                // inserts outbox rows.
                let events: Vec<_> = rows.iter().map(issued_outbox).collect();
                run_now(insert_outbox(db, &events))?;
            }
            Ok(())
        })?;
        self.riders.batch_committed();
        Ok(())
    }

    /// Which of these coupons are in the record.
    pub fn existing(&mut self, ids: &[CouponId]) -> Result<HashSet<CouponId>, StoreError> {
        let mut find = self
            .conn
            .prepare_cached("SELECT 1 FROM coupons WHERE id = ?1")?;
        let mut found = HashSet::new();
        for id in ids {
            if find.exists([id.to_string()])? {
                found.insert(*id);
            }
        }
        Ok(found)
    }

    /// Write one batch of a sale's orders in one transaction (see
    /// `sales::insert_orders_in`): at once, or, if an order with extras
    /// was refused, rolled back and written again carefully. The orders
    /// that landed.
    pub fn insert_orders(&mut self, rows: &[NewOrderRow]) -> Result<HashSet<OrderId>, StoreError> {
        use crate::store::sales::{Extras, answered, insert_orders_in};
        let rows: Vec<&NewOrderRow> = rows.iter().collect();
        let riders = self.riders.clone();
        // Both transactions run in this one job, under the caller's write
        // turn: no other write comes between them.
        let tx = self.begin()?;
        let at_once = run_now(insert_orders_in(
            &mut Rusqlite(&tx),
            &rows,
            "",
            Extras::AtOnce,
        ))?;
        let landed = match at_once {
            Some(landed) => {
                commit_with(tx, &riders)?;
                landed
            }
            None => {
                tx.rollback()?;
                self.in_transaction(|db| {
                    answered(run_now(insert_orders_in(db, &rows, "", Extras::OneByOne))?)
                })?
            }
        };
        riders.batch_committed();
        Ok(landed)
    }

    /// Apply a batch of payment events in one transaction (see
    /// `payments::apply_inbound_in`): one answer per event.
    pub fn apply_inbound(&mut self, items: &[InboundItem]) -> Result<Vec<Applied>, StoreError> {
        self.in_transaction(|db| run_now(crate::store::payments::apply_inbound_in(db, items)))
    }
}

/// The answer of a job the writer's thread never ran.
fn gone() -> StoreError {
    StoreError::Db(sqlx::Error::Protocol(
        "the SQLite writer thread is gone".into(),
    ))
}

/// A small write, riding in the next transaction of a writer thread of the
/// store (see [`Riders`]): `riders` is the store's, `flusher` the thread
/// that commits it on its own when no batch comes first. How many rows it
/// changed, once committed.
pub(super) async fn ride(
    riders: &Riders,
    turn: &Arc<WriteTurn>,
    flusher: &SqliteWriter,
    sql: String,
    args: Vec<Arg>,
) -> Result<u64, StoreError> {
    let (id, mut answer) = riders.push(sql, args);
    let _withdraw = Withdraw { riders, id };
    if riders.drop_on()
        && let Ok(out) = tokio::time::timeout(RIDE_WAIT, &mut answer).await
    {
        return out.unwrap_or_else(|_| Err(gone()));
    }
    tokio::select! {
        // A batch took it (a storm is on): no turn of its own.
        out = &mut answer => return out.unwrap_or_else(|_| Err(gone())),
        turn = turn.ordinary() => {
            // An error before the riders ran leaves them waiting: this
            // one is taken back here, unless a batch took it meanwhile
            // (then its answer comes), and answered with the error.
            if let Err(e) = flusher.commit_riders(turn).await
                && riders.withdraw(id)
            {
                return Err(e);
            }
        }
    }
    answer.await.unwrap_or_else(|_| Err(gone()))
}

/// Run the riders waiting in `tx`, commit it, and answer them.
fn commit_with(tx: rusqlite::Transaction<'_>, riders: &Riders) -> Result<(), StoreError> {
    let answers = riders.ride(&tx)?;
    let committed = tx.commit().map_err(StoreError::from);
    answers.end(committed.as_ref().map(|_| ()));
    committed
}

/// What the writer's thread is asked to do: a job on its connection,
/// which sends its own answer.
type Job = Box<dyn FnOnce(&mut Batches) + Send>;

/// A handle on a writer thread, and the store's write turn, which its
/// batches take ahead of every other write (see `WriteTurn`).
#[derive(Debug)]
pub(super) struct SqliteWriter {
    jobs: std_mpsc::Sender<Job>,
    turn: Arc<WriteTurn>,
    /// The thread, to tell whether it still runs.
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SqliteWriter {
    /// Start the thread that owns `batches`; it ends when this is dropped.
    pub fn start(batches: Batches, turn: Arc<WriteTurn>) -> std::io::Result<Self> {
        let (jobs, queue) = std_mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                let mut batches = batches;
                while let Ok(job) = queue.recv() {
                    job(&mut batches);
                }
            })?;
        Ok(Self {
            jobs,
            turn,
            thread: Some(thread),
        })
    }

    /// The thread has ended (a job panicked): nothing more is written here.
    pub fn stopped(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| t.is_finished())
    }

    /// A test hook: a job that panics, as a bug in one would.
    #[cfg(test)]
    pub async fn crash(&self) {
        #[allow(clippy::panic)]
        let _ = self
            .answer(|_| -> Result<(), StoreError> { panic!("a writer job panicked") })
            .await;
    }

    /// Run `work` on the thread's connection, as part of this task's trace
    /// (a write that records its request id finds it there; a turn the
    /// write needs goes inside `work`, so it is held for as long as the
    /// write runs on the thread, whatever becomes of this future). `None` if the
    /// thread is gone (it panicked): the job never reached it, or its
    /// transaction was rolled back as the panic unwound, so nothing of it
    /// was written.
    async fn answer<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Batches) -> Result<T, StoreError> + Send + 'static,
    ) -> Option<Result<T, StoreError>> {
        let (reply, answer) = oneshot::channel();
        let trace = crate::trace::current();
        let job: Job = Box::new(move |batches| {
            let _ = reply.send(crate::trace::sync_scope(trace, || work(batches)));
        });
        self.jobs.send(job).ok()?;
        answer.await.ok()
    }

    /// [`Self::answer`] for the group commit, which ends with the thread.
    async fn ask<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Batches) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        match self.answer(work).await {
            Some(result) => result,
            // Ending the group-commit task too is what gives the batch's
            // stock back (`Pending::drop`) and turns `/readyz` to 503
            // (`writers_alive`); answering an error instead would leave
            // every later batch "unknown", its stock held.
            #[allow(clippy::panic)]
            None => panic!("the SQLite writer thread is gone"),
        }
    }

    /// Commit the small writes waiting in `riders` (a store's, which this
    /// thread takes from) in a transaction of their own, in `turn`. An
    /// error before they were run leaves them waiting.
    pub async fn commit_riders(&self, turn: Turn) -> Result<(), StoreError> {
        self.answer(move |b| {
            let _turn = turn;
            b.commit_riders()
        })
        .await
        .unwrap_or_else(|| Err(gone()))
    }

    /// Apply a batch of payment events, in an ordinary write turn (behind
    /// the group commits). A thread that is gone is an error: nothing was
    /// written, and the consumer returns the events to the queue.
    pub async fn apply_inbound(&self, items: &[InboundItem]) -> Result<Vec<Applied>, StoreError> {
        let turn = self.turn.ordinary().await;
        let owned = items.to_vec();
        self.answer(move |b| {
            let _turn = turn;
            b.apply_inbound(&owned)
        })
        .await
        .unwrap_or_else(|| Err(gone()))
    }

    /// Write a batch of orders, in the group commit's turn.
    pub async fn insert_orders(
        &self,
        rows: &[&NewOrderRow],
    ) -> Result<HashSet<OrderId>, StoreError> {
        let turn = self.turn.urgent().await;
        let owned: Vec<NewOrderRow> = rows.iter().map(|&r| r.clone()).collect();
        self.ask(move |b| {
            let _turn = turn;
            b.insert_orders(&owned)
        })
        .await
    }
}

#[async_trait]
impl CouponWriter for SqliteWriter {
    /// Write one group-commit batch in one transaction: all rows or none.
    async fn insert(&mut self, rows: &[&NewCouponRow]) -> Result<HashSet<CouponId>, StoreError> {
        let turn = self.turn.urgent().await;
        let owned: Vec<NewCouponRow> = rows.iter().map(|&r| r.clone()).collect();
        self.ask(move |b| {
            let _turn = turn;
            b.insert(&owned)
        })
        .await?;
        Ok(rows.iter().map(|r| r.id).collect())
    }

    async fn existing(&mut self, rows: &[&NewCouponRow]) -> Result<HashSet<CouponId>, StoreError> {
        let ids: Vec<CouponId> = rows.iter().map(|r| r.id).collect();
        self.ask(move |b| b.existing(&ids)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::campaign::NewCampaign;
    use crate::domain::ids::{CampaignId, UserId};
    use crate::domain::timestamp::Timestamp;
    use crate::store::sql::args;
    use crate::store::{CampaignStore, SqliteStore, Store};
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    fn row(campaign: CampaignId, user: UserId, seq: u32, code: Option<&str>) -> NewCouponRow {
        NewCouponRow {
            id: CouponId::generate(),
            campaign_id: campaign,
            user_id: user,
            seq,
            user_seq: seq,
            idempotency_key: None,
            issued_at: Timestamp(1),
            valid_from: Timestamp(1),
            valid_until: Timestamp(2),
            gate_epoch: 0,
            code: code.map(Into::into),
            trace: None,
        }
    }

    /// A store with `users` users and one campaign of `total` coupons,
    /// `limit` a user.
    async fn store_with_campaign(
        dir: &Path,
        users: usize,
        total: u32,
        limit: u32,
    ) -> (SqliteStore, Vec<UserId>, CampaignId) {
        let (store, users) = super::super::tests::store_with_users(dir, users).await;
        let campaign = serde_json::from_value::<NewCampaign>(serde_json::json!({
            "name": "c",
            "discount": {"type": "fixed", "amount": 1000},
            "total_quantity": total,
            "per_user_limit": limit,
            "issue_starts_at": "2026-01-01T00:00:00Z",
            "issue_ends_at": "2027-01-01T00:00:00Z",
            "valid_days": 7,
        }))
        .expect("body")
        .parse(CampaignId::generate(), Timestamp(0))
        .expect("campaign");
        store
            .insert_campaign(&campaign, Timestamp(0))
            .await
            .expect("campaign");
        (store, users, campaign.id)
    }

    /// The `n`th coupon (from 0) of a storm over `users`.
    fn nth(c: CampaignId, users: &[UserId], n: usize) -> NewCouponRow {
        NewCouponRow {
            seq: n as u32 + 1,
            user_seq: (n / users.len()) as u32 + 1,
            ..row(c, users[n % users.len()], 1, None)
        }
    }

    /// The checkpoint sequence in the log's header: SQLite adds one each
    /// time the log starts over.
    fn log_generation(db: &Path) -> u32 {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        let header = std::fs::read(wal).expect("the log");
        u32::from_be_bytes(header[12..16].try_into().expect("a header"))
    }

    /// Batches written back to back, as in a storm, never leave the
    /// passive checkpoint a moment to finish, so SQLite alone never starts
    /// the log over (it grew to gigabytes in a drop): the upkeep asks, a
    /// batch does, and every coupon is still there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_starts_over_while_batches_follow_each_other() {
        let dir = tempfile::tempdir().expect("dir");
        let (store, users, c) = store_with_campaign(dir.path(), 50, 50_000, 1000).await;
        store.log.set_limit(64);
        let mut batches =
            Batches::open(store.path(), Durability::Full, false, store.log()).expect("writer");
        let generation = log_generation(store.path());
        // How many coupons the thread has written, until told to stop.
        let written = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let writing = {
            let (written, stop) = (written.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) && n + 32 <= 50_000 {
                    let rows: Vec<_> = (n..n + 32).map(|i| nth(c, &users, i)).collect();
                    batches.insert(&rows).expect("batch");
                    n += 32;
                    written.store(n, Ordering::Relaxed);
                }
            })
        };
        // The upkeep, more often than the server's.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while store.log.restarts() < 3
            && !writing.is_finished()
            && std::time::Instant::now() < deadline
        {
            store.checkpoint().await.expect("checkpoint");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        stop.store(true, Ordering::Relaxed);
        writing.join().expect("writer thread");
        let written = written.load(Ordering::Relaxed);
        assert!(
            store.log.restarts() >= 3,
            "{} restarts",
            store.log.restarts()
        );
        // SQLite's own count: the log's header numbers each start over.
        let restarted = log_generation(store.path()) - generation;
        assert!(restarted >= 3, "the log started over {restarted} times");
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM coupons")
            .fetch_one(&store.pool)
            .await
            .expect("count");
        assert_eq!(count, written as i64);
        store.close().await;
    }

    /// A reader still on the old log makes the restart give up after a
    /// short wait: the batch is written anyway, and once the upkeep asks
    /// again a later one starts the log over.
    #[tokio::test]
    async fn a_reader_on_the_log_delays_the_restart_not_the_batch() {
        let dir = tempfile::tempdir().expect("dir");
        let (store, users, c) = store_with_campaign(dir.path(), 10, 1000, 100).await;
        store.log.set_limit(1);
        let mut batches =
            Batches::open(store.path(), Durability::Full, false, store.log()).expect("writer");
        let mut n = 0;
        let mut batch = |batches: &mut Batches| {
            let rows: Vec<_> = (n..n + 10).map(|i| nth(c, &users, i)).collect();
            n += 10;
            batches.insert(&rows).expect("batch");
        };
        batch(&mut batches);
        // A reader whose snapshot is in the log, as a GET in flight.
        let reader = rusqlite::Connection::open(store.path()).expect("reader");
        reader.execute_batch("BEGIN").expect("begin");
        let seen: i64 = reader
            .query_row("SELECT COUNT(*) FROM coupons", [], |r| r.get(0))
            .expect("read");
        assert_eq!(seen, 10);
        store.checkpoint().await.expect("checkpoint");
        batch(&mut batches);
        assert_eq!(store.log.restarts(), 0, "restarted under a reader");
        let before = store.passive_checkpoint().await.expect("checkpoint").0;
        reader.execute_batch("COMMIT").expect("end the read");
        // The upkeep's next round asks again.
        batch(&mut batches);
        assert_eq!(store.log.restarts(), 0, "asked once, tried once");
        store.checkpoint().await.expect("checkpoint");
        batch(&mut batches);
        assert_eq!(store.log.restarts(), 1);
        // Only the last batch's frames are in the log now.
        let after = store.passive_checkpoint().await.expect("checkpoint").0;
        assert!(
            after < before,
            "{after} frames after the restart, {before} before"
        );
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM coupons")
            .fetch_one(&store.pool)
            .await
            .expect("count");
        assert_eq!(count, 40);
        store.close().await;
    }

    const SUBSCRIBE: &str = "INSERT INTO subscriptions (campaign_id, user_id, created_at) \
         VALUES ($1, $2, 0) ON CONFLICT DO NOTHING";

    /// Does `user` have a subscription to `c` in the record?
    async fn subscribed(store: &SqliteStore, c: CampaignId, user: UserId) -> bool {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM subscriptions WHERE campaign_id = $1 AND user_id = $2",
        )
        .bind(c.to_string())
        .bind(user.to_string())
        .fetch_one(&store.pool)
        .await
        .expect("count");
        n == 1
    }

    /// A writer on `store`'s file taking its small writes from `riders`.
    fn batches_riding(store: &SqliteStore, riders: &Arc<Riders>) -> Batches {
        let mut batches =
            Batches::open(store.path(), Durability::Full, false, store.log()).expect("writer");
        batches.take_riders_from(riders.clone());
        batches
    }

    /// Queue `user`'s subscription to `c` as a rider: its answer.
    fn subscribe_rider(
        riders: &Riders,
        c: CampaignId,
        user: UserId,
    ) -> oneshot::Receiver<Result<u64, StoreError>> {
        riders
            .push(SUBSCRIBE.into(), args![c.to_string(), user.to_string()])
            .1
    }

    /// Small writes waiting when a batch commits ride in its transaction:
    /// answered as soon as the batch is written (no commit of their own),
    /// each in its own savepoint, so one the record refuses is answered
    /// with its error and neither the batch nor the others lose anything.
    #[tokio::test]
    async fn small_writes_ride_a_batch_and_one_refused_spoils_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let (store, users, c) = store_with_campaign(dir.path(), 3, 100, 10).await;
        let riders = Arc::new(Riders::default());
        let mut batches = batches_riding(&store, &riders);

        let mut first = subscribe_rider(&riders, c, users[0]);
        // A user who does not exist: the foreign key refuses it.
        let mut ghost = subscribe_rider(&riders, c, UserId::generate());
        let mut second = subscribe_rider(&riders, c, users[1]);
        let rows: Vec<_> = (0..3).map(|i| nth(c, &users, i)).collect();
        batches.insert(&rows).expect("batch");

        assert_eq!(first.try_recv().expect("answered").expect("written"), 1);
        assert_eq!(second.try_recv().expect("answered").expect("written"), 1);
        let refused = ghost.try_recv().expect("answered");
        assert!(
            matches!(refused, Err(StoreError::Constraint(_))),
            "{refused:?}"
        );
        assert!(riders.is_empty());
        let ids: Vec<CouponId> = rows.iter().map(|r| r.id).collect();
        assert_eq!(batches.existing(&ids).expect("existing").len(), 3);
        assert!(subscribed(&store, c, users[0]).await);
        assert!(subscribed(&store, c, users[1]).await);
        store.close().await;
    }

    /// A batch the record refuses takes no rider with it: they wait for
    /// the next commit (here one of their own), and land.
    #[tokio::test]
    async fn riders_wait_out_a_refused_batch() {
        let dir = tempfile::tempdir().expect("dir");
        let (store, users, c) = store_with_campaign(dir.path(), 2, 3, 3).await;
        let riders = Arc::new(Riders::default());
        let mut batches = batches_riding(&store, &riders);
        let mut answer = subscribe_rider(&riders, c, users[0]);
        // Seq 4 is above the stock of 3.
        let over = [row(c, users[1], 4, None)];
        batches.insert(&over).expect_err("over the stock");
        assert!(
            answer.try_recv().is_err(),
            "answered with a batch that was rolled back"
        );
        assert!(!riders.is_empty());
        assert!(!subscribed(&store, c, users[0]).await);

        batches.commit_riders().expect("commit");
        assert_eq!(answer.try_recv().expect("answered").expect("written"), 1);
        assert!(subscribed(&store, c, users[0]).await);
        store.close().await;
    }

    /// Through the store: with no batch coming, a subscription gets an
    /// ordinary turn and a commit of its own; while a batch holds the turn
    /// it waits, and the batch's commit answers it (the turn never came).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscription_rides_the_batch_in_its_way() {
        use crate::store::{SubscriptionStore, Topic};
        let dir = tempfile::tempdir().expect("dir");
        let (store, users, c) = store_with_campaign(dir.path(), 3, 100, 10).await;
        let topic = Topic::Campaign(c);
        assert!(
            store
                .subscribe(users[0], topic, Timestamp(5))
                .await
                .expect("alone")
        );
        assert!(subscribed(&store, c, users[0]).await);

        // A drop's batch is on its way: the urgent turn is taken, so no
        // ordinary write gets one until this test lets go.
        let turn = store.write_turn.urgent().await;
        let toggled = tokio::spawn({
            let (store, user) = (store.clone(), users[1]);
            async move { store.subscribe(user, topic, Timestamp(6)).await }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while store.riders.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the subscription never queued"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        // The batch, written as the coupons' writer thread writes it.
        let mut batches = batches_riding(&store, &store.riders);
        let row = nth(c, &users, 0);
        tokio::task::spawn_blocking(move || batches.insert(&[row]))
            .await
            .expect("thread")
            .expect("batch");
        let answer = tokio::time::timeout(std::time::Duration::from_secs(10), toggled)
            .await
            .expect("answered while the turn was still taken");
        assert!(answer.expect("task").expect("rode"));
        drop(turn);
        assert!(subscribed(&store, c, users[1]).await);
        store.close().await;
    }

    /// A writer whose thread is gone does not answer "unknown" for ever:
    /// it panics, which ends the group-commit task (its claims give their
    /// stock back, readiness sees it; `admission::tests`).
    #[tokio::test]
    async fn a_writer_whose_thread_is_gone_panics() {
        let (jobs, queue) = std_mpsc::channel();
        drop(queue);
        let mut writer = SqliteWriter {
            jobs,
            turn: WriteTurn::shared(),
            thread: None,
        };
        let r = row(CampaignId::generate(), UserId::generate(), 1, None);
        let ended = tokio::spawn(async move { writer.insert(&[&r]).await.map(|_| ()) }).await;
        assert!(ended.is_err_and(|e| e.is_panic()));
    }

    /// A batch handed to the thread holds the write turn until the thread
    /// is done with it, even if the caller is cancelled meanwhile: an
    /// ordinary write let in then would meet SQLite's lock and sleep.
    #[tokio::test]
    async fn a_cancelled_caller_keeps_the_turn_until_the_thread_is_done() {
        let (jobs, queue) = std_mpsc::channel::<Job>();
        let turn = WriteTurn::shared();
        let mut writer = SqliteWriter {
            jobs,
            turn: turn.clone(),
            thread: None,
        };
        let r = row(CampaignId::generate(), UserId::generate(), 1, None);
        let caller = tokio::spawn(async move { writer.insert(&[&r]).await.map(|_| ()) });
        // The "thread" has taken the job and is writing it.
        let (job, _queue) = tokio::task::spawn_blocking(move || (queue.recv(), queue))
            .await
            .expect("thread");
        let job = job.expect("the batch reached the thread");
        caller.abort();
        assert!(caller.await.is_err_and(|e| e.is_cancelled()));
        let soon = std::time::Duration::from_millis(50);
        assert!(
            tokio::time::timeout(soon, turn.ordinary()).await.is_err(),
            "an ordinary write went while the batch was still being written"
        );
        drop(job); // written
        assert!(
            tokio::time::timeout(std::time::Duration::from_secs(5), turn.ordinary())
                .await
                .is_ok()
        );
    }

    /// The writer's own connection keeps the record's constraints and
    /// reports them as the group commit needs: a refusal (nothing of the
    /// batch written) and, for a unique code, which index refused.
    #[tokio::test]
    async fn a_batch_is_all_or_nothing_and_refusals_are_named() {
        let dir = tempfile::tempdir().expect("dir");
        let (store, users, c) = store_with_campaign(dir.path(), 1, 3, 3).await;
        let user = users[0];
        let mut batches =
            Batches::open(store.path(), Durability::Full, true, store.log()).expect("writer");

        // Seq 4 is above the stock of 3: the trigger refuses the batch.
        let over = [row(c, user, 1, None), row(c, user, 4, None)];
        let err = batches.insert(&over).expect_err("over the stock");
        assert!(
            matches!(err, StoreError::Constraint(ref m) if m.contains("campaign bounds")),
            "{err:?}"
        );
        let ids: Vec<CouponId> = over.iter().map(|r| r.id).collect();
        assert!(batches.existing(&ids).expect("existing").is_empty());

        let first = [row(c, user, 1, Some("CODE-1"))];
        batches.insert(&first).expect("within bounds");
        let again = [row(c, user, 2, Some("CODE-1"))];
        let err = batches.insert(&again).expect_err("code taken");
        assert!(
            matches!(err, StoreError::Unique(ref m) if m.contains("coupons.code")),
            "{err:?}"
        );
        let asked = [first[0].id, again[0].id];
        let found = batches.existing(&asked).expect("existing");
        assert_eq!(found, HashSet::from([first[0].id]));

        // The coupon's outbox event went with it.
        let (outbox,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM outbox WHERE id = $1")
            .bind(first[0].id.to_string())
            .fetch_one(&store.pool)
            .await
            .expect("count");
        assert_eq!(outbox, 1);
        store.close().await;
    }
}
