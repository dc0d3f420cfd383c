//! The system of record: SQLite on disk (embedded mode) or PostgreSQL
//! (scale-out). Both keep promise 7 as schema constraints; both answer the
//! same [`Store`] trait, so everything above this module is shared.
//!
//! One file per aggregate (accounts, campaigns, coupons and their holds,
//! inbox, the outbox, payment events, the points ledger, time sales and orders, service keys, statistics, subscriptions, webhooks), each with its records, its SQL, its row decoders
//! and the trait [`Store`] is made of; `sqlite/` and `postgres/` hold what
//! differs (the group-commit writer, the gate fence, migrations).
//!
//! Plain runtime queries (`sqlx::query`), not the compile-time macros, so
//! building needs no database. Where the two dialects agree the SQL text is
//! shared (`$N` placeholders work in both), and rows decode through one set of
//! functions over `columns::Columns`.

mod accounts;
mod campaigns;
mod codes;
mod columns;
mod coupons;
mod holds;
mod inbox;
mod outbox;
mod payments;
pub(crate) mod points;
pub mod postgres;
pub(crate) mod sales;
mod service_keys;
pub(crate) mod sql;
pub mod sqlite;
pub(crate) mod stats;
mod subscriptions;
mod triggers;
mod webhooks;
mod write_turn;

use std::collections::HashMap;
use std::fmt::Debug;

use std::borrow::Cow;

use async_trait::async_trait;
use futures_core::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType};

use crate::domain::ids::{CampaignId, CouponId};
use crate::domain::timestamp::Timestamp;

pub use accounts::{AccountStore, UserRecord};
pub use campaigns::CampaignStore;
pub use codes::{CodeHit, CodeLine, CodeStore, Job, JobStatus, Redemption};
pub use coupons::{
    CouponFilter, CouponStore, CouponWriter, FencedCampaign, IssuedRow, NewCouponRow,
};
pub use holds::{HoldRecord, HoldState, HoldStore};
pub use inbox::{ExpiringCoupon, InboxStore, NotificationRow, StoredNotification};
pub use outbox::{OutboxRow, OutboxStore, Reports};
pub use payments::{Applied, InboundItem, InboundRecord, OrderStep, PaymentStore};
pub use points::{
    EntryKind, HoldChange, LedgerWrite, LotMove, PointBalance, PointEntry, PointHold, PointLot,
    PointStore, Posting, Written,
};
pub use postgres::PgStore;
pub use sales::{FencedSale, NewOrderRow, Refusal, SaleStore, SaleSummary};
pub use service_keys::{ServiceKeyRecord, ServiceKeyStore};
pub use sqlite::{Batches, LogLength, PAGE_SIZE as SQLITE_PAGE_SIZE, SqliteStore, repage};
pub use stats::{CampaignFigures, StatsStore, UserCard, UserCoupons};
pub use subscriptions::{SubscriptionStore, Topic};
pub use triggers::{TriggerEvent, TriggerStore};
pub use webhooks::{
    AttemptRecord, DeliveryRecord, LeasedDelivery, NewDelivery, NextStep, WebhookRecord,
    WebhookStore,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A UNIQUE constraint rejected the write; the message names it.
    #[error("unique constraint violated: {0}")]
    Unique(String),
    /// Another constraint (CHECK, trigger, foreign key) rejected the write:
    /// with a correct gate this never happens (promise 7).
    #[error("constraint violated: {0}")]
    Constraint(String),
    #[error(transparent)]
    Db(sqlx::Error),
    /// An error of the embedded group-commit writer's own connection.
    #[error(transparent)]
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        use rusqlite::ffi;
        if let rusqlite::Error::SqliteFailure(e, message) = &err
            && e.code == rusqlite::ErrorCode::ConstraintViolation
        {
            let message = message.clone().unwrap_or_else(|| e.to_string());
            // The same split as sqlx's `is_unique_violation` for SQLite.
            return match e.extended_code {
                ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                    StoreError::Unique(message)
                }
                _ => StoreError::Constraint(message),
            };
        }
        StoreError::Sqlite(err)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err {
            if db.is_unique_violation() {
                return StoreError::Unique(db.message().to_owned());
            }
            let code = db.code().unwrap_or_default();
            // SQLite: every constraint failure (CHECK, foreign key, NOT NULL, a
            // trigger's RAISE(ABORT)) has primary result code 19; the extended
            // code adds the kind in the high bits. PostgreSQL: SQLSTATE class 23
            // (integrity constraint violation), which our triggers raise too.
            let sqlite_constraint = code.parse::<i32>().is_ok_and(|c| c & 0xff == 19);
            if sqlite_constraint || code.starts_with("23") {
                return StoreError::Constraint(db.message().to_owned());
            }
        }
        StoreError::Db(err)
    }
}

impl StoreError {
    pub fn is_constraint(&self) -> bool {
        matches!(self, StoreError::Unique(_) | StoreError::Constraint(_))
    }

    /// The record could not be reached (down, restarting, out of
    /// connections), as opposed to refusing the request: a 503, not a 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Db(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::WorkerCrashed,
            ) => true,
            // PostgreSQL: connection exceptions (08), insufficient resources
            // (53), operator intervention such as a shutdown (57), and a
            // transaction rolled back for a deadlock or a serialization
            // failure (40): each worth a retry. SQLite: busy or locked (5, 6).
            StoreError::Db(sqlx::Error::Database(db)) => db.code().is_some_and(|c| {
                let sqlstate = c.len() == 5;
                (sqlstate
                    && ["08", "53", "57", "40"]
                        .iter()
                        .any(|class| c.starts_with(class)))
                    || (!sqlstate && c.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6)))
            }),
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            _ => false,
        }
    }
}

/// Everything the platform needs of its record. The account, campaign and
/// coupon queries are the same SQL on both backends; what is here differs.
#[async_trait]
pub trait Store:
    AccountStore
    + CampaignStore
    + CodeStore
    + CouponStore
    + HoldStore
    + InboxStore
    + OutboxStore
    + PaymentStore
    + PointStore
    + SaleStore
    + ServiceKeyStore
    + StatsStore
    + SubscriptionStore
    + TriggerStore
    + WebhookStore
    + Send
    + Sync
    + Debug
{
    /// Start a new gate generation for a campaign and read what it issued, as
    /// one step: commits of claims admitted by an older generation either
    /// finished before (and are in `issued`) or are refused from now on.
    async fn fence_and_load(&self, campaign: CampaignId) -> Result<FencedCampaign, StoreError>;
    /// For claims the gate still holds as in flight long after they were
    /// admitted (seq and the coupon id each would have): which seqs landed,
    /// and as which coupon. Commits for the campaign that were running have
    /// finished when this answers, and the claims that had not landed are
    /// written off in the record, so no commit can land them later.
    async fn resolve_stale(
        &self,
        campaign: CampaignId,
        claims: &[(u32, CouponId)],
    ) -> Result<HashMap<u32, IssuedRow>, StoreError>;
    /// A connection of its own for the group-commit writer, so batches never
    /// queue behind reads for a pooled connection. With `outbound`, it also
    /// writes each coupon's `coupon.issued` to the outbox, in the batch's
    /// transaction (a broker publishes the outbox).
    async fn writer(&self, outbound: bool) -> Result<Box<dyn CouponWriter>, StoreError>;
    /// The record's time plus `offset_ms` (what tests moved the
    /// application clock by; 0 in production). Holds are stamped and ended
    /// by it, so instances whose clocks disagree agree on when a hold runs
    /// out. SQLite: this process's clock, the only one there is.
    async fn now(&self, offset_ms: i64) -> Result<Timestamp, StoreError>;
    /// Is the record reachable?
    async fn ping(&self) -> Result<(), StoreError>;
    /// Background upkeep to run while serving (SQLite's checkpoints).
    fn upkeep(&self) -> Option<BoxFuture<'static, ()>>;
    /// For a bulk writer between two big transactions: wait, at most
    /// `within`, until what was written is out of the write-ahead log, so
    /// the next write starts the log over instead of growing it. SQLite only:
    /// a writer that never pauses keeps the log from ever being reset (a
    /// million codes left a 5 GB log). Nothing to wait for on PostgreSQL.
    async fn let_log_catch_up(&self, _within: std::time::Duration) {}
    /// How many times a writer has started SQLite's write-ahead log over
    /// during a storm (see `store::sqlite::LogLength`); `None` on
    /// PostgreSQL.
    fn log_restarts(&self) -> Option<u64> {
        None
    }
    async fn close(&self);
}

/// Every aggregate's shared queries for a store with a `pool` of database
/// `$db` (the SQL is written once; see each aggregate's module).
macro_rules! shared_queries {
    ($store:ty, $db:ty) => {
        $crate::store::accounts::account_queries!($store, $db);
        $crate::store::campaigns::campaign_queries!($store, $db);
        $crate::store::codes::code_queries!($store, $db);
        $crate::store::coupons::coupon_queries!($store, $db);
        $crate::store::holds::hold_queries!($store, $db);
        $crate::store::inbox::inbox_queries!($store, $db);
        $crate::store::outbox::outbox_queries!($store, $db);
        $crate::store::payments::payment_queries!($store, $db);
        $crate::store::points::point_queries!($store, $db);
        $crate::store::service_keys::service_key_queries!($store, $db);
        $crate::store::stats::stats_queries!($store, $db);
        $crate::store::subscriptions::subscriptions_queries!($store, $db);
        $crate::store::triggers::trigger_queries!($store, $db);
        $crate::store::webhooks::webhooks_queries!($store, $db);
    };
}
pub(crate) use shared_queries;

/// Migrations compiled into the binary, in order.
#[derive(Debug)]
pub(crate) struct Migrations(pub &'static [(i64, &'static str, &'static str)]);

impl MigrationSource<'static> for Migrations {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|&(version, name, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(name),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}
