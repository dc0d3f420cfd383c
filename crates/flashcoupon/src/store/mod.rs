//! The system of record (embedded mode): SQLite on disk, in WAL mode with
//! `synchronous = FULL` by default, so a committed transaction survives
//! `kill -9` and power loss (`NORMAL` on request: `kill -9` only).
//! Migrations are embedded in the binary.
//!
//! Plain runtime queries (`sqlx::query`), not the compile-time macros, so
//! building needs no database.

mod accounts;
mod campaigns;
mod coupons;

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use futures_core::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqliteConnection, SqlitePool};

pub use accounts::UserRecord;

use crate::settings::Durability;
pub use coupons::{CouponFilter, NewCouponRow};

/// Migrations, in order, compiled into the binary.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "core",
    include_str!("../../migrations/sqlite/0001_core.sql"),
)];

#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
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
            // Every constraint failure (CHECK, foreign key, NOT NULL, a trigger's
            // RAISE(ABORT)) has SQLite's primary result code 19, SQLITE_CONSTRAINT;
            // the extended code adds the kind in the high bits.
            let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
            if code & 0xff == 19 {
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
}

/// The pool for reads and ordinary writes, plus how to open the dedicated
/// group-commit connection.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    options: SqliteConnectOptions,
}

impl Store {
    /// Open (creating if needed) `flashcoupon.db` in `data_dir` and migrate it.
    pub async fn open(data_dir: &Path, durability: Durability) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
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
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory")
            // Checkpoints run in `checkpoint`, off the commit path (see there).
            .pragma("wal_autocheckpoint", "0")
            .log_statements(tracing::log::LevelFilter::Trace);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        Migrator::new(Embedded).await?.run(&pool).await?;
        Ok(Self { pool, options })
    }

    /// A connection of its own for the group-commit writer, so batches never
    /// queue behind reads for a pooled connection.
    pub async fn writer_connection(&self) -> Result<SqliteConnection, sqlx::Error> {
        self.options.connect().await
    }

    /// Copy committed WAL pages into the database file without blocking
    /// writers. SQLite's automatic checkpoint would run inside whichever
    /// commit crosses its threshold, i.e. inside a group commit, stalling
    /// every claim of that batch; this runs on a pooled connection instead,
    /// on another thread, from [`Store::run_checkpoints`].
    pub async fn checkpoint(&self) -> Result<(), sqlx::Error> {
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Checkpoint every `every` until the task is dropped.
    pub async fn run_checkpoints(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.checkpoint().await {
                tracing::warn!(error = %e, "checkpoint failed; will retry");
            }
        }
    }

    /// `SELECT 1`: is the record reachable?
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Checkpoint what is left and close every connection.
    pub async fn close(&self) {
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await;
        self.pool.close().await;
    }
}

/// Column helpers: ids are stored as text, and the schema's CHECKs keep them parseable.
fn parse_id<T: FromStr>(raw: &str) -> Result<T, sqlx::Error> {
    raw.parse()
        .map_err(|_| sqlx::Error::Decode(format!("malformed id in the record: {raw:?}").into()))
}
