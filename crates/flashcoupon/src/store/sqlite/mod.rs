//! The record in embedded mode: SQLite on disk, in WAL mode with
//! `synchronous = FULL` by default, so a committed transaction survives
//! `kill -9` and power loss (`NORMAL` on request: `kill -9` only).
//! Migrations are embedded in the binary.

mod log;
mod pages;
mod reads;
mod writer;

pub use log::{LIMIT_FRAMES, LogLength};
pub use pages::{PAGE_SIZE, Repaged, repage};
pub use writer::Batches;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_core::future::BoxFuture;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqlitePool};

use super::columns::parse_id;
use super::write_turn::{Turn, WriteTurn};
use super::{
    CampaignStore, CouponFilter, CouponStore, CouponWriter, FencedCampaign, IssuedRow, Migrations,
    Store, StoreError, UserRecord,
};
use crate::domain::account::{Email, Role};
use crate::domain::campaign::Campaign;
use crate::domain::coupon::{Coupon, CouponStatus, Spend};
use crate::domain::ids::{CampaignId, CouponId, UserId};
use crate::domain::timestamp::Timestamp;
use crate::settings::Durability;

/// Migrations, in order, compiled into the binary.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "core",
        include_str!("../../../migrations/sqlite/0001_core.sql"),
    ),
    (
        2,
        "notifications",
        include_str!("../../../migrations/common/0002_notifications.sql"),
    ),
    (
        3,
        "inbox",
        include_str!("../../../migrations/sqlite/0003_inbox.sql"),
    ),
    (
        4,
        "token revocation",
        include_str!("../../../migrations/common/0004_token_revocation.sql"),
    ),
    (
        5,
        "token epoch",
        include_str!("../../../migrations/common/0005_token_epoch.sql"),
    ),
    (
        6,
        "service keys",
        include_str!("../../../migrations/common/0006_service_keys.sql"),
    ),
    (
        7,
        "reservations",
        include_str!("../../../migrations/sqlite/0007_reservations.sql"),
    ),
    (
        8,
        "outbox and inbound events",
        include_str!("../../../migrations/common/0008_outbox_and_inbound.sql"),
    ),
    (
        9,
        "codes",
        include_str!("../../../migrations/common/0009_codes.sql"),
    ),
    (
        10,
        "triggers",
        include_str!("../../../migrations/common/0010_triggers.sql"),
    ),
    (
        11,
        "points",
        include_str!("../../../migrations/common/0011_points.sql"),
    ),
    (
        12,
        "points are immutable",
        include_str!("../../../migrations/sqlite/0012_points_immutable.sql"),
    ),
    (
        13,
        "sales",
        include_str!("../../../migrations/common/0013_sales.sql"),
    ),
    (
        14,
        "sales bounds",
        include_str!("../../../migrations/sqlite/0014_sales_bounds.sql"),
    ),
    (
        15,
        "sale subscriptions",
        include_str!("../../../migrations/common/0015_sale_subscriptions.sql"),
    ),
    (
        16,
        "claim counts",
        include_str!("../../../migrations/common/0016_claim_counts.sql"),
    ),
    (
        17,
        "statistics without a pass",
        include_str!("../../../migrations/common/0017_stats_reads.sql"),
    ),
    (
        18,
        "request ids on what a request sends out",
        include_str!("../../../migrations/common/0018_request_ids.sql"),
    ),
    (
        19,
        "a coupon is its own coupon.issued inbox entry",
        include_str!("../../../migrations/common/0019_issued_inbox_from_coupons.sql"),
    ),
];

/// The pool for reads and ordinary writes, plus where the group-commit
/// writer opens its own connection.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
    durability: Durability,
    /// Every write of this process takes a turn, the group commit first.
    write_turn: Arc<WriteTurn>,
    /// The checkout's writer thread (the sales' group commit, payment
    /// events), started with the first batch of either (coupons have their
    /// own: [`Store::writer`]).
    checkout: Arc<tokio::sync::OnceCell<writer::SqliteWriter>>,
    /// Whether the write-ahead log is to be started over (see [`log`]).
    log: Arc<LogLength>,
    /// Connections for point reads on the request's thread (see [`reads`]).
    readers: Arc<reads::Readers>,
    /// Small writes riding in the writer threads' transactions (see
    /// [`SqliteStore::small_write`]).
    riders: Arc<writer::Riders>,
}

impl SqliteStore {
    /// Open (creating if needed) `flashcoupon.db` in `data_dir` and migrate it.
    pub async fn open(data_dir: &Path, durability: Durability) -> anyhow::Result<Self> {
        crate::data_dir::create_private(data_dir)?;
        let path = data_dir.join("flashcoupon.db");
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::Full => SqliteSynchronous::Full,
                Durability::Normal => SqliteSynchronous::Normal,
            })
            .foreign_keys(true)
            .busy_timeout(log::BUSY_TIMEOUT)
            .pragma("temp_store", "memory")
            // Checkpoints run in `checkpoint`, off the commit path but for
            // a long log's restart (see there).
            .pragma("wal_autocheckpoint", "0")
            // Once the log starts over, its file is cut back to this: a
            // burst of writes does not keep its disk space for ever.
            .pragma("journal_size_limit", log::FILE_LIMIT_BYTES.to_string())
            // A new database only (an existing one keeps its pages: see
            // `repage`).
            .page_size(PAGE_SIZE)
            .log_statements(tracing::log::LevelFilter::Trace);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Migrator::new(Migrations(MIGRATIONS))
            .await?
            .run(&pool)
            .await?;
        // The pool's first connection created the file and, in WAL mode, its
        // -wal and -shm companions; SQLite keeps the mode it finds.
        let companions = ["flashcoupon.db-wal", "flashcoupon.db-shm"].map(|f| data_dir.join(f));
        crate::data_dir::restrict(&[&path, &companions[0], &companions[1]])?;
        let (page_size,): (u32,) = sqlx::query_as("PRAGMA page_size").fetch_one(&pool).await?;
        if page_size != PAGE_SIZE {
            tracing::info!(
                page_size,
                "the database keeps its {page_size}-byte pages; new databases get {PAGE_SIZE} (fewer bytes written a claim): `flashcoupon admin repage` rewrites it, the server stopped"
            );
        }
        Ok(Self {
            pool,
            readers: reads::Readers::new(&path),
            path,
            durability,
            write_turn: WriteTurn::shared(),
            checkout: Default::default(),
            log: Default::default(),
            riders: Default::default(),
        })
    }

    /// `sql`'s first row, parsed by `parse`: a read by key on a hot path,
    /// on the caller's thread (see [`reads`]).
    pub(super) async fn read_one<T: Send + 'static>(
        &self,
        sql: &'static str,
        args: Vec<super::sql::Arg>,
        parse: impl Fn(&super::sql::OwnedRow) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<Option<T>, StoreError> {
        self.readers.row(sql, args, parse).await
    }

    /// A writer thread with its own connection to the database file.
    fn start_writer(&self, outbound: bool) -> Result<writer::SqliteWriter, StoreError> {
        let mut batches = Batches::open(&self.path, self.durability, outbound, self.log.clone())?;
        batches.take_riders_from(self.riders.clone());
        writer::SqliteWriter::start(batches, self.write_turn.clone())
            .map_err(|e| StoreError::Db(sqlx::Error::Io(e)))
    }

    /// A small ordinary write (one statement: a subscription toggled): it
    /// rides in the next transaction of a writer thread, a drop's batch if
    /// one is on its way, else one of its own in an ordinary turn (see
    /// `writer::Riders`). How many rows it changed, once committed.
    pub(super) async fn small_write(
        &self,
        sql: String,
        args: Vec<super::sql::Arg>,
    ) -> Result<u64, StoreError> {
        if self.pool.is_closed() {
            // Closed: no writer thread is started again for it.
            return Err(StoreError::Db(sqlx::Error::PoolClosed));
        }
        let flusher = self.checkout().await?;
        writer::ride(&self.riders, &self.write_turn, flusher, sql, args).await
    }

    /// A group-commit batch of orders, on the checkout's writer thread.
    async fn write_orders(
        &self,
        rows: &[&super::NewOrderRow],
    ) -> Result<std::collections::HashSet<crate::domain::ids::OrderId>, StoreError> {
        self.checkout().await?.insert_orders(rows).await
    }

    /// A batch of payment events, on the checkout's writer thread.
    async fn apply_payments(
        &self,
        items: &[super::InboundItem],
    ) -> Result<Vec<super::Applied>, StoreError> {
        self.checkout().await?.apply_inbound(items).await
    }

    async fn checkout(&self) -> Result<&writer::SqliteWriter, StoreError> {
        // The order rows and the payment reports carry their own outbox
        // rows; the writer's flag is for coupons.
        self.checkout
            .get_or_try_init(|| async { self.start_writer(false) })
            .await
    }

    /// Where the database file is (the record-ceiling benchmark opens its
    /// own writer on it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the writers know of the log's length (the record-ceiling
    /// benchmark's writer shares it).
    pub fn log(&self) -> Arc<LogLength> {
        self.log.clone()
    }

    /// Wait for this process's turn to write, behind the group commit (see
    /// [`WriteTurn`]).
    pub(super) async fn write_turn(&self) -> Option<Turn> {
        Some(self.write_turn.ordinary().await)
    }

    /// One writer at a time here: writes gathered into one transaction
    /// share its commit.
    pub(super) fn write_turn_is_serial(&self) -> bool {
        true
    }

    /// Copy committed WAL pages into the database file without blocking
    /// writers. SQLite's automatic checkpoint would run inside whichever
    /// commit crosses its threshold, i.e. inside a group commit, stalling
    /// every claim of that batch; this runs on a pooled connection instead,
    /// on another thread, as the store's upkeep. A log grown too long is
    /// copied again until little is left, then started over by the next
    /// batch (see [`log`]).
    pub async fn checkpoint(&self) -> Result<(), sqlx::Error> {
        let (mut frames, _) = self.passive_checkpoint().await?;
        if !self.log.too_long(frames) {
            return Ok(());
        }
        // The writers appended while that pass copied: copy again until
        // little came meanwhile, so the batch that starts the log over has
        // little left to copy (it makes that batch's claims wait).
        let mut appended = frames;
        let mut passes = 0;
        while passes < log::CATCH_UP_PASSES && appended > log::LEFT_FOR_THE_BATCH {
            let (now, _) = self.passive_checkpoint().await?;
            if now < frames {
                // The log started over by itself.
                return Ok(());
            }
            (appended, frames, passes) = (now - frames, now, passes + 1);
        }
        tracing::debug!(frames, passes, appended, "asking for the log to start over");
        self.log.want_restart();
        Ok(())
    }

    /// One passive checkpoint: the frames in the log, and how many of them
    /// are copied into the database file.
    async fn passive_checkpoint(&self) -> Result<(i64, i64), sqlx::Error> {
        // (busy, frames in the log, frames copied into the database)
        let (_, frames, copied): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&self.pool)
            .await?;
        Ok((frames, copied))
    }
}

super::shared_queries!(SqliteStore, sqlx::Sqlite);
super::sales::sale_queries!(SqliteStore, sqlx::Sqlite);

#[async_trait]
impl Store for SqliteStore {
    /// One process owns the file and its gate, so there is no other
    /// generation to fence: the epoch stays 0.
    async fn fence_and_load(&self, campaign: CampaignId) -> Result<FencedCampaign, StoreError> {
        let found = self
            .get_campaign(campaign)
            .await?
            .ok_or_else(|| StoreError::Db(sqlx::Error::RowNotFound))?;
        Ok(FencedCampaign {
            campaign: found,
            epoch: 0,
            issued: self.issued_rows(campaign).await?,
        })
    }

    /// One process: nothing else writes coupons, so nothing to write off.
    async fn resolve_stale(
        &self,
        campaign: CampaignId,
        claims: &[(u32, CouponId)],
    ) -> Result<HashMap<u32, IssuedRow>, StoreError> {
        let mut found = HashMap::new();
        for &(seq, _) in claims {
            let row = sqlx::query(&format!(
                "SELECT {} FROM coupons WHERE campaign_id = $1 AND seq = $2",
                super::coupons::ISSUED_COLUMNS
            ))
            .bind(campaign.to_string())
            .bind(seq as i64)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = row {
                found.insert(seq, super::coupons::issued(&row)?);
            }
        }
        Ok(found)
    }

    async fn writer(&self, outbound: bool) -> Result<Box<dyn CouponWriter>, StoreError> {
        Ok(Box::new(self.start_writer(outbound)?))
    }

    async fn now(&self, offset_ms: i64) -> Result<Timestamp, StoreError> {
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Ok(Timestamp(system + offset_ms))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        // Payment events are written by the checkout's thread alone: with
        // it gone they would go back to the queue for ever, and `/readyz`
        // must say so even while no sale's group commit is there to notice.
        if self.checkout.get().is_some_and(|w| w.stopped()) {
            return Err(StoreError::Db(sqlx::Error::Protocol(
                "the checkout's SQLite writer thread has stopped".into(),
            )));
        }
        Ok(())
    }

    /// Checkpoint every 500 ms, off the commit path.
    fn upkeep(&self) -> Option<BoxFuture<'static, ()>> {
        let store = self.clone();
        Some(Box::pin(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = store.checkpoint().await {
                    tracing::warn!(error = %e, "checkpoint failed; will retry");
                }
            }
        }))
    }

    fn log_restarts(&self) -> Option<u64> {
        Some(self.log.restarts())
    }

    async fn let_log_catch_up(&self, within: Duration) {
        let started = std::time::Instant::now();
        loop {
            match self.passive_checkpoint().await {
                Ok((log, done)) if done < log && started.elapsed() < within => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => return,
            }
        }
    }

    /// Checkpoint what is left and close every connection.
    async fn close(&self) {
        self.readers.close();
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await;
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AccountStore, InboxStore};

    /// Wait until no connection is open on the database at `path` (it can
    /// be locked exclusively): `close` returns before sqlx's threads have
    /// closed theirs, and they need this runtime to finish, so it is polled
    /// with an async wait, for 20 s at most.
    pub(super) async fn until_free(path: &Path) {
        let exclusive = || {
            let c = rusqlite::Connection::open(path)?;
            c.busy_timeout(Duration::ZERO)?;
            c.query_row("PRAGMA locking_mode = EXCLUSIVE", [], |r| {
                r.get::<_, String>(0)
            })?;
            c.execute_batch("BEGIN EXCLUSIVE; COMMIT;")
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while let Err(e) = exclusive() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the file is still in use after the store closed: {e}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A store in `dir` with `n` users (the writer's and the pages' tests).
    pub(super) async fn store_with_users(dir: &Path, n: usize) -> (SqliteStore, Vec<UserId>) {
        let store = SqliteStore::open(dir, Durability::Full)
            .await
            .expect("open");
        let users: Vec<(UserId, Email)> = (0..n)
            .map(|i| {
                let email = Email::parse(&format!("kim{i}@example.com")).expect("email");
                (UserId::generate(), email)
            })
            .collect();
        store
            .insert_users(&users, "x", Timestamp(0))
            .await
            .expect("users");
        (store, users.into_iter().map(|(id, _)| id).collect())
    }

    /// A checkout thread that died (a job panicked) turns `ping`, and so
    /// `/readyz`, to not ready; a payment batch then gets an error, not a
    /// hang or a panic.
    #[tokio::test]
    async fn a_dead_checkout_thread_is_not_ready_and_refuses_payments() {
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open(dir.path(), Durability::Full)
            .await
            .expect("open");
        let writer = store.checkout().await.expect("checkout writer");
        store.ping().await.expect("ready while the thread runs");
        writer.crash().await;
        let mut waited = 0;
        while !writer.stopped() {
            assert!(waited < 1_000, "the thread did not end");
            waited += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let ping = store.ping().await;
        assert!(
            ping.as_ref()
                .is_err_and(|e| e.to_string().contains("writer thread has stopped")),
            "{ping:?}"
        );
        let applied = store.apply_payments(&[]).await;
        assert!(applied.is_err(), "{applied:?}");
    }

    /// A trigger campaign reaches the events that happened from its
    /// creation on, never one taken in before it, however late the runner
    /// leases that event (the welcome coupon of a sign-up before the
    /// welcome campaign existed was once issued when the runner lagged).
    #[tokio::test]
    async fn a_trigger_campaign_does_not_reach_back_to_earlier_events() {
        use crate::domain::campaign::NewCampaign;
        use crate::store::{CampaignStore, TriggerStore};
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open(dir.path(), Durability::Full)
            .await
            .expect("open");
        let created = Timestamp(1_800_000_000_000);
        let welcome = serde_json::from_value::<NewCampaign>(serde_json::json!({
            "name": "welcome",
            "discount": {"type": "fixed", "amount": 1000},
            "total_quantity": 3,
            "trigger": "signup",
            "issue_starts_at": "2026-01-01T00:00:00Z",
            "issue_ends_at": "2030-01-01T00:00:00Z",
            "valid_days": 7,
        }))
        .expect("body")
        .parse(CampaignId::generate(), created)
        .expect("campaign");
        store
            .insert_campaign(&welcome, created)
            .await
            .expect("campaign");
        let later = created.plus_millis(60_000);
        let before = store
            .trigger_campaigns("signup", created.plus_millis(-1), later)
            .await
            .expect("campaigns");
        assert!(before.is_empty(), "{before:?}");
        for happened in [created, created.plus_millis(1)] {
            let after = store
                .trigger_campaigns("signup", happened, later)
                .await
                .expect("campaigns");
            assert_eq!(after, vec![welcome.id]);
        }
        let other = store
            .trigger_campaigns("custom:birthday", later, later)
            .await
            .expect("campaigns");
        assert!(other.is_empty(), "{other:?}");
    }

    /// Migration 19 moves each coupon's `coupon.issued` inbox row onto the
    /// coupon: the inbox reads the same entries, read or not, once each.
    #[tokio::test]
    async fn the_issued_inbox_rows_become_the_coupons_own_entries() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("flashcoupon.db");
        let options = SqliteConnectOptions::from_str("sqlite://")
            .expect("options")
            .filename(&path)
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.expect("pool");
        Migrator::new(Migrations(&MIGRATIONS[..18]))
            .await
            .expect("migrations")
            .run(&pool)
            .await
            .expect("to 18");
        let (user, campaign) = (UserId::generate(), CampaignId::generate());
        let (read, unread) = (CouponId::generate(), CouponId::generate());
        let other = uuid::Uuid::now_v7();
        for sql in [
            format!(
                "INSERT INTO users (id, email, password_hash, created_at) VALUES ('{user}', 'k@example.com', 'x', 0)"
            ),
            format!(
                "INSERT INTO campaigns (id, name, discount_type, discount_amount, total_quantity, per_user_limit, \
                 issue_starts_at, issue_ends_at, valid_days, created_at) VALUES ('{campaign}', 'c', 'fixed', 100, 5, 5, 0, 10, 7, 0)"
            ),
            format!(
                "INSERT INTO coupons (id, campaign_id, user_id, seq, user_seq, issued_at, valid_from, valid_until) VALUES \
                 ('{read}', '{campaign}', '{user}', 1, 1, 1, 1, 86400001), ('{unread}', '{campaign}', '{user}', 2, 2, 2, 2, 86400002)"
            ),
            format!(
                "INSERT INTO notifications (id, user_id, kind, campaign_id, payload, created_at, read_at) VALUES \
                 ('{read}', '{user}', 'coupon.issued', '{campaign}', '{{}}', 1, 5), \
                 ('{unread}', '{user}', 'coupon.issued', '{campaign}', '{{}}', 2, NULL), \
                 ('{other}', '{user}', 'campaign.opened', '{campaign}', '{{\"x\":1}}', 3, NULL)"
            ),
        ] {
            sqlx::query(&sql).execute(&pool).await.expect(&sql);
        }
        pool.close().await;

        let store = SqliteStore::open(dir.path(), Durability::Full)
            .await
            .expect("to 19");
        let inbox = store.inbox(user, false, 50, None).await.expect("inbox");
        let entries: Vec<(uuid::Uuid, &str, bool)> = inbox
            .iter()
            .map(|n| (n.id, n.kind.as_str(), n.read_at.is_some()))
            .collect();
        assert_eq!(
            entries,
            [
                (other, "campaign.opened", false),
                (unread.0, "coupon.issued", false),
                (read.0, "coupon.issued", true),
            ]
        );
        let payload: serde_json::Value = serde_json::from_str(&inbox[1].payload).expect("json");
        assert_eq!(payload["seq"], 2, "{payload}");
        assert_eq!(payload["coupon_id"], unread.to_string(), "{payload}");
        assert_eq!(store.unread_count(user).await.expect("count"), 2);
        // Unread only, a page at a time: the cursor runs across both kinds.
        let page = store.inbox(user, true, 1, None).await.expect("page");
        assert_eq!(page[0].id, other);
        let next = store.inbox(user, true, 1, Some(other)).await.expect("next");
        assert_eq!(next[0].id, unread.0);
        // Marking reads both tables.
        let marked = store
            .mark_read(user, Some(&[unread.0, other]), Timestamp(9))
            .await
            .expect("mark");
        assert_eq!(marked, 2);
        assert_eq!(store.unread_count(user).await.expect("count"), 0);
        // The old rows stay, unread by the inbox.
        let (left,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM notifications WHERE kind = 'coupon.issued'")
                .fetch_one(&store.pool)
                .await
                .expect("count");
        assert_eq!(left, 2);
        store.close().await;
    }
}
