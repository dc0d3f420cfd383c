//! The system of record: SQLite on disk (embedded mode) or PostgreSQL
//! (scale-out). Both keep promise 7 as schema constraints; both answer the
//! same [`Store`] trait, so everything above this module is shared.
//!
//! Plain runtime queries (`sqlx::query`), not the compile-time macros, so
//! building needs no database. Where the two dialects agree the SQL text is
//! shared (`$N` placeholders work in both), and rows decode through one set of
//! functions over [`rows::Columns`].

pub mod notify;
pub mod postgres;
mod rows;
pub mod sqlite;

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;

use std::borrow::Cow;

use async_trait::async_trait;
use futures_core::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType};

use crate::domain::account::{Email, Role};
use crate::domain::campaign::Campaign;
use crate::domain::coupon::{Coupon, CouponStatus, Spend};
use crate::domain::ids::{CampaignId, CouponId, UserId};
use crate::domain::timestamp::Timestamp;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

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
            // (53), operator intervention such as a shutdown (57).
            StoreError::Db(sqlx::Error::Database(db)) => db
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("53") || c.starts_with("57")),
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: UserId,
    pub password_hash: String,
    pub role: Role,
}

/// A coupon the gate admitted, ready to be written.
#[derive(Debug, Clone)]
pub struct NewCouponRow {
    pub id: CouponId,
    pub campaign_id: CampaignId,
    pub user_id: UserId,
    pub seq: u32,
    pub user_seq: u32,
    pub idempotency_key: Option<Box<str>>,
    pub issued_at: Timestamp,
    pub valid_from: Timestamp,
    pub valid_until: Timestamp,
    /// The gate generation that admitted it: PostgreSQL refuses the row if the
    /// gate was rebuilt since (see [`CouponStore::fence_and_load`]).
    pub gate_epoch: u64,
}

/// Which coupons a wallet read returns.
#[derive(Debug, Clone, Copy, Default)]
pub struct CouponFilter {
    pub campaign: Option<CampaignId>,
    pub status: Option<CouponStatus>,
}

/// One coupon of a campaign as the record holds it, in `seq` order: what the
/// gate is rebuilt from and what the tests check the promises against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedRow {
    pub id: CouponId,
    pub user: UserId,
    pub seq: u32,
    pub user_seq: u32,
    pub key: Option<String>,
}

/// What a gate rebuild starts from: the campaign's live settings, its new
/// gate generation and every coupon it issued.
#[derive(Debug)]
pub struct FencedCampaign {
    pub campaign: Campaign,
    pub epoch: u64,
    pub issued: Vec<IssuedRow>,
}

#[async_trait]
pub trait AccountStore {
    /// `Err(StoreError::Unique)` when the e-mail is taken.
    async fn insert_user(
        &self,
        id: UserId,
        email: &Email,
        password_hash: &str,
        role: Role,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Many users sharing one password hash, all or none.
    async fn insert_users(
        &self,
        users: &[(UserId, Email)],
        password_hash: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    async fn find_user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError>;
    async fn user_exists(&self, id: UserId) -> Result<bool, StoreError>;
    /// Make `email` an admin: create it with `create_hash` if absent; if it
    /// exists, promote it and, when a hash is given, reset its password.
    async fn upsert_admin(
        &self,
        email: &Email,
        create_hash: &str,
        reset_hash: Option<&str>,
        now: Timestamp,
    ) -> Result<(UserId, bool), StoreError>;
}

#[async_trait]
pub trait CampaignStore {
    async fn insert_campaign(&self, c: &Campaign) -> Result<(), StoreError>;
    async fn get_campaign(&self, id: CampaignId) -> Result<Option<Campaign>, StoreError>;
    /// Newest first; `before` is the last id of the previous page.
    async fn list_campaigns(
        &self,
        limit: u32,
        before: Option<CampaignId>,
    ) -> Result<Vec<Campaign>, StoreError>;
    async fn all_campaigns(&self) -> Result<Vec<Campaign>, StoreError>;
    /// Apply the fields that are `Some`, in one statement.
    async fn update_campaign(
        &self,
        id: CampaignId,
        paused: Option<bool>,
        issue_ends_at: Option<Timestamp>,
        total_quantity: Option<u32>,
    ) -> Result<(), StoreError>;
}

#[async_trait]
pub trait CouponStore {
    async fn get_coupon(&self, id: CouponId) -> Result<Option<Coupon>, StoreError>;
    /// A user's coupons, newest first; `before` is the last id of the previous page.
    async fn list_coupons(
        &self,
        user: UserId,
        filter: CouponFilter,
        now: Timestamp,
        limit: u32,
        before: Option<CouponId>,
    ) -> Result<Vec<Coupon>, StoreError>;
    /// Spend an available coupon. `false` if it was no longer available (a
    /// concurrent spend won): the caller re-reads and answers from that.
    async fn mark_used(&self, id: CouponId, spend: &Spend) -> Result<bool, StoreError>;
    /// Undo the spend made by `order_id`. `false` if the coupon was not used by it.
    async fn cancel_use(&self, id: CouponId, order_id: &str) -> Result<bool, StoreError>;
    /// A campaign's coupons with their owners' emails, in `seq` order,
    /// from `after_seq + 1` on (the winners list).
    async fn winners(
        &self,
        campaign: CampaignId,
        after_seq: u32,
        limit: u32,
    ) -> Result<Vec<(Coupon, String)>, StoreError>;
    /// Every coupon of one campaign, in `seq` order.
    async fn issued_rows(&self, campaign: CampaignId) -> Result<Vec<IssuedRow>, StoreError>;
    /// Every issued coupon, by campaign, for rebuilding the embedded gate.
    async fn issued_by_campaign(&self) -> Result<HashMap<CampaignId, Vec<IssuedRow>>, StoreError>;
}

/// The group-commit writer's own connection.
#[async_trait]
pub trait CouponWriter: Send {
    /// Write one batch in one transaction: all rows or an error. Rows whose
    /// gate generation is stale are left out; the answer is what landed.
    async fn insert(&mut self, rows: &[&NewCouponRow]) -> Result<HashSet<CouponId>, StoreError>;
    /// Which of these coupons are in the record (to settle a batch whose
    /// commit reported an error: a COMMIT can fail to answer yet land).
    /// Waits for a transaction still writing them to finish first.
    async fn existing(&mut self, rows: &[&NewCouponRow]) -> Result<HashSet<CouponId>, StoreError>;
}

/// Everything the platform needs of its record. The account, campaign and
/// coupon queries are the same SQL on both backends; what is here differs.
#[async_trait]
pub trait Store:
    AccountStore + CampaignStore + CouponStore + notify::NotifyStore + Send + Sync + Debug
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
    /// queue behind reads for a pooled connection.
    async fn writer(&self) -> Result<Box<dyn CouponWriter>, StoreError>;
    /// Does the group-commit writer also write each coupon's `coupon.issued`
    /// inbox row (id = the coupon id), in the coupon's own transaction?
    fn writes_issued_inbox(&self) -> bool {
        false
    }
    /// Is the record reachable?
    async fn ping(&self) -> Result<(), StoreError>;
    /// Background upkeep to run while serving (SQLite's checkpoints).
    fn upkeep(&self) -> Option<BoxFuture<'static, ()>>;
    async fn close(&self);
}

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

/// Column helpers: ids are stored as text, and the schema's CHECKs keep them parseable.
fn parse_id<T: std::str::FromStr>(raw: &str) -> Result<T, sqlx::Error> {
    raw.parse()
        .map_err(|_| sqlx::Error::Decode(format!("malformed id in the record: {raw:?}").into()))
}
