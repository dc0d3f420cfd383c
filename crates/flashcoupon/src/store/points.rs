//! The points ledger in the record (promises 8 and 9): immutable entries
//! chained per user, lots that expire, what each entry took from which lot,
//! and holds for orders. Every write of a user goes through
//! [`ledger_write`], inside one transaction that first locks the user's
//! account row, so concurrent writes of one user queue there and each sees
//! the last one's balance and lots (the schema refuses the rest anyway:
//! `migrations/common/0011_points.sql`).

#[cfg(test)]
mod model_tests;

use async_trait::async_trait;
use uuid::Uuid;

use super::columns::{Columns, parse_id};
use super::sql::{Sql, args};
use super::{HoldState, Reports, StoreError};
use crate::domain::ids::UserId;
use crate::domain::timestamp::Timestamp;

/// An entry's kind, as API.md names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    Earn,
    Spend,
    Hold,
    Release,
    Expire,
    Refund,
    Adjust,
}

impl EntryKind {
    pub const ALL: [EntryKind; 7] = [
        EntryKind::Earn,
        EntryKind::Spend,
        EntryKind::Hold,
        EntryKind::Release,
        EntryKind::Expire,
        EntryKind::Refund,
        EntryKind::Adjust,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Earn => "earn",
            EntryKind::Spend => "spend",
            EntryKind::Hold => "hold",
            EntryKind::Release => "release",
            EntryKind::Expire => "expire",
            EntryKind::Refund => "refund",
            EntryKind::Adjust => "adjust",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One entry of a user's ledger, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointEntry {
    pub id: Uuid,
    pub user_id: UserId,
    /// Its place in the user's chain, from 1.
    pub seq: i64,
    pub kind: EntryKind,
    /// Signed: what it did to the balance.
    pub amount: i64,
    pub balance_after: i64,
    pub reference: Option<String>,
    pub reason: Option<String>,
    pub order_id: Option<String>,
    pub refund_of: Option<Uuid>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

/// What an entry does to the user's lots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LotMove {
    None,
    /// A new lot of the entry's amount, expiring then (an earn, a positive
    /// adjust).
    NewLot(Timestamp),
    /// Take the entry's amount from the earliest-expiring live lots (a
    /// spend, a hold, a negative adjust): not enough → insufficient.
    TakeFifo,
    /// Give back exactly what this entry took, to the same lots (a refund
    /// of a spend, the release of a hold).
    GiveBack(Uuid),
    /// Take nothing more, but own what this entry took (the spend that
    /// confirms a hold owns the hold's takes, so refunding it gives them
    /// back).
    CopyTakes(Uuid),
    /// The lot's whole remainder, which must still be `amount` (an expiry,
    /// once: another instance that expired it first leaves it at zero).
    ExpireLot {
        lot: Uuid,
        amount: i64,
    },
}

/// One entry to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub id: Uuid,
    pub kind: EntryKind,
    pub amount: i64,
    pub reference: Option<String>,
    pub reason: Option<String>,
    pub order_id: Option<String>,
    pub refund_of: Option<Uuid>,
    pub expires_at: Option<Timestamp>,
    pub lots: LotMove,
}

/// What a write does to a hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldChange {
    None,
    /// Open a hold for the order: its entry is the write's `hold` posting.
    Open {
        order_id: String,
        expires_at: Timestamp,
    },
    /// End the live hold `hold` (its entry id) as `to`; a confirm only
    /// while it has not run out at `now`.
    End {
        hold: Uuid,
        to: HoldState,
    },
}

/// One all-or-nothing write to a user's ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerWrite {
    pub user: UserId,
    pub now: Timestamp,
    /// Look this reference up first: there already → that entry, nothing
    /// written.
    pub reference: Option<String>,
    pub postings: Vec<Posting>,
    pub hold: HoldChange,
    /// What the write does to the open holds' total.
    pub held_delta: i64,
    pub reports: Reports,
}

/// How a ledger write ended. Anything but `Done` wrote nothing (the
/// caller's transaction must be rolled back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Done(Vec<PointEntry>),
    /// The reference (or the hold's order) was written before: its entry.
    Existing(PointEntry),
    /// The balance, or the live lots, do not cover it.
    Insufficient,
    /// The spend was refunded before.
    AlreadyRefunded,
    /// A conditional step found its row changed (a hold that ended, a lot
    /// another instance expired): read again.
    Raced,
}

/// A user's points now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PointBalance {
    pub balance: i64,
    pub held: i64,
    /// What is left of live lots, by expiry, earliest first.
    pub expiring: Vec<(i64, Timestamp)>,
}

/// A hold for an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointHold {
    pub entry_id: Uuid,
    pub user_id: UserId,
    pub order_id: String,
    pub amount: i64,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub state: HoldState,
}

/// A lot with something left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointLot {
    pub id: Uuid,
    pub user_id: UserId,
    pub remaining: i64,
    pub expires_at: Timestamp,
}

#[async_trait]
pub trait PointStore {
    /// Write `w` in a transaction of its own.
    async fn write_points(&self, w: &LedgerWrite) -> Result<Written, StoreError>;
    /// Write each of `writes` in one transaction, each in a savepoint of
    /// its own (one that is not `Done` leaves no trace): one commit for
    /// all. Any database error fails the whole batch, nothing written.
    async fn write_points_many(&self, writes: &[&LedgerWrite]) -> Result<Vec<Written>, StoreError>;
    /// Do ledger writes go faster gathered into batches (one writer at a
    /// time, each commit a sync: SQLite) than each in a transaction of its
    /// own run side by side (PostgreSQL)?
    fn batches_ledger_writes(&self) -> bool;
    async fn point_balance(&self, user: UserId, now: Timestamp)
    -> Result<PointBalance, StoreError>;
    /// Only the balance (what an order checks before it takes a unit: one
    /// read, where [`PointStore::point_balance`] makes two).
    async fn point_balance_only(&self, user: UserId) -> Result<i64, StoreError>;
    /// Newest first, `before` an entry id of the user's.
    async fn point_history(
        &self,
        user: UserId,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<PointEntry>, StoreError>;
    async fn point_entry_by_reference(
        &self,
        user: UserId,
        reference: &str,
    ) -> Result<Option<PointEntry>, StoreError>;
    /// Every hold of these orders, in any state.
    async fn point_holds_of_orders(&self, orders: &[&str]) -> Result<Vec<PointHold>, StoreError>;
    /// The user's hold for an order, in any state.
    async fn point_hold(
        &self,
        user: UserId,
        order_id: &str,
    ) -> Result<Option<PointHold>, StoreError>;
    /// The spends of an order not refunded yet.
    async fn order_point_spends(&self, order_id: &str) -> Result<Vec<PointEntry>, StoreError>;
    /// Live holds run out by `now`, earliest first.
    async fn due_point_holds(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<PointHold>, StoreError>;
    /// Lots with something left whose time is up by `now`, earliest first.
    async fn due_point_lots(&self, now: Timestamp, limit: u32)
    -> Result<Vec<PointLot>, StoreError>;
    /// Lots with something left expiring by `until` whose owner was not
    /// warned yet.
    async fn point_lots_to_warn(
        &self,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<PointLot>, StoreError>;
    async fn mark_point_lots_warned(&self, lots: &[Uuid]) -> Result<(), StoreError>;
}

pub(super) const ENTRY_COLUMNS: &str = "id, user_id, seq, kind, amount, balance_after, reference, \
     reason, order_id, refund_of, created_at, expires_at";

pub(super) fn entry(row: &impl Columns) -> Result<PointEntry, sqlx::Error> {
    Ok(PointEntry {
        id: parse_id(&row.text("id")?)?,
        user_id: parse_id(&row.text("user_id")?)?,
        seq: row.int("seq")?,
        kind: EntryKind::parse(&row.text("kind")?)
            .ok_or_else(|| sqlx::Error::Decode("unknown point entry kind in the record".into()))?,
        amount: row.int("amount")?,
        balance_after: row.int("balance_after")?,
        reference: row.opt_text("reference")?,
        reason: row.opt_text("reason")?,
        order_id: row.opt_text("order_id")?,
        refund_of: row
            .opt_text("refund_of")?
            .map(|r| parse_id(&r))
            .transpose()?,
        created_at: Timestamp(row.int("created_at")?),
        expires_at: row.opt_int("expires_at")?.map(Timestamp),
    })
}

pub(super) const HOLD_COLUMNS: &str =
    "entry_id, user_id, order_id, amount, created_at, expires_at, state";

pub(super) fn point_hold(row: &impl Columns) -> Result<PointHold, sqlx::Error> {
    let state = row.text("state")?;
    Ok(PointHold {
        entry_id: parse_id(&row.text("entry_id")?)?,
        user_id: parse_id(&row.text("user_id")?)?,
        order_id: row.text("order_id")?,
        amount: row.int("amount")?,
        created_at: Timestamp(row.int("created_at")?),
        expires_at: Timestamp(row.int("expires_at")?),
        state: HoldState::parse(&state)
            .ok_or_else(|| sqlx::Error::Decode("unknown hold state in the record".into()))?,
    })
}

pub(super) fn lot(row: &impl Columns) -> Result<PointLot, sqlx::Error> {
    Ok(PointLot {
        id: parse_id(&row.text("id")?)?,
        user_id: parse_id(&row.text("user_id")?)?,
        remaining: row.int("remaining")?,
        expires_at: Timestamp(row.int("expires_at")?),
    })
}

/// The entries a write makes, as they will read once committed: the chain
/// continues from `seq` and `balance`. `None` if any would leave the
/// balance below zero.
pub fn chain(w: &LedgerWrite, mut seq: i64, mut balance: i64) -> Option<Vec<PointEntry>> {
    let mut out = Vec::with_capacity(w.postings.len());
    for p in &w.postings {
        seq += 1;
        balance = balance.checked_add(p.amount)?;
        if balance < 0 {
            return None;
        }
        out.push(PointEntry {
            id: p.id,
            user_id: w.user,
            seq,
            kind: p.kind,
            amount: p.amount,
            balance_after: balance,
            reference: p.reference.clone(),
            reason: p.reason.clone(),
            order_id: p.order_id.clone(),
            refund_of: p.refund_of,
            created_at: w.now,
            expires_at: p.expires_at,
        });
    }
    Some(out)
}

/// Inside the caller's transaction: the ledger write `w`. Anything but
/// `Done` may have written part of it: the caller rolls the transaction
/// (or its savepoint) back.
pub(super) async fn ledger_write<S: Sql>(
    tx: &mut S,
    w: &LedgerWrite,
) -> Result<Written, StoreError> {
    let user = w.user.to_string();
    // The user's lock, in one statement: every write of this user queues on
    // this row (PostgreSQL: the upsert locks it; SQLite: the write turn
    // already serialises writers).
    let account = tx
        .fetch_one(
            "INSERT INTO point_accounts (user_id) VALUES ($1) ON CONFLICT (user_id) \
             DO UPDATE SET held = point_accounts.held RETURNING seq, balance, held",
            args![&user],
        )
        .await?;
    let seq = account.opt_int("seq")?.unwrap_or(0);
    let balance = account.int("balance")?;
    let held = account.int("held")?;
    if let HoldChange::End { hold, to } = &w.hold {
        // A confirm must come before the hold runs out; a release or an
        // expiry any time while it is held.
        let cutoff = if *to == HoldState::Confirmed {
            w.now.0
        } else {
            i64::MIN
        };
        let ended = tx
            .execute(
                "UPDATE point_holds SET state = $1, resolved_at = $2 \
                 WHERE entry_id = $3 AND user_id = $4 AND state = 'held' AND expires_at > $5",
                args![to.as_str(), w.now.0, hold.to_string(), &user, cutoff],
            )
            .await?;
        if ended != 1 {
            return Ok(Written::Raced);
        }
    }
    let Some(entries) = chain(w, seq, balance) else {
        return first_or(tx, w, seq, Written::Insufficient).await;
    };
    let new_held = held + w.held_delta;
    if new_held < 0 {
        return Ok(Written::Raced);
    }
    for e in &entries {
        // Its reference taken, or its spend refunded, before: the write is
        // a repeat, or refused.
        let inserted = tx
            .execute(
                "INSERT INTO point_entries (id, user_id, seq, prev_seq, prev_balance, kind, amount, \
                 balance_after, reference, reason, order_id, refund_of, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                 ON CONFLICT DO NOTHING",
                args![
                    e.id.to_string(),
                    &user,
                    e.seq,
                    (e.seq > 1).then_some(e.seq - 1),
                    e.balance_after - e.amount,
                    e.kind.as_str(),
                    e.amount,
                    e.balance_after,
                    e.reference.as_deref(),
                    e.reason.as_deref(),
                    e.order_id.as_deref(),
                    e.refund_of.map(|r| r.to_string()),
                    e.created_at.0,
                    e.expires_at.map(|t| t.0),
                ],
            )
            .await?;
        if inserted != 1 {
            return first_or(tx, w, seq, Written::Raced).await;
        }
    }
    for p in &w.postings {
        let id = p.id.to_string();
        match &p.lots {
            LotMove::None => {}
            LotMove::NewLot(expires_at) => {
                tx.execute(
                    "INSERT INTO point_lots (id, user_id, amount, remaining, expires_at) \
                     VALUES ($1, $2, $3, $3, $4)",
                    args![&id, &user, p.amount, expires_at.0],
                )
                .await?;
            }
            LotMove::TakeFifo => {
                let lots = tx
                    .fetch_all(
                        "SELECT id, remaining FROM point_lots WHERE user_id = $1 AND remaining > 0 \
                         AND expires_at > $2 ORDER BY expires_at, id",
                        args![&user, w.now.0],
                    )
                    .await?;
                let mut need = -p.amount;
                for lot in &lots {
                    if need == 0 {
                        break;
                    }
                    let take = need.min(lot.int("remaining")?);
                    let lot_id = lot.text("id")?;
                    tx.execute(
                        "UPDATE point_lots SET remaining = remaining - $1 WHERE id = $2",
                        args![take, &lot_id],
                    )
                    .await?;
                    tx.execute(
                        "INSERT INTO point_takes (entry_id, lot_id, amount) VALUES ($1, $2, $3)",
                        args![&id, lot_id, take],
                    )
                    .await?;
                    need -= take;
                }
                if need > 0 {
                    // The balance covers it but live lots do not: some are
                    // due and not expired yet.
                    return first_or(tx, w, seq, Written::Insufficient).await;
                }
            }
            LotMove::GiveBack(from) => {
                let takes = tx
                    .fetch_all(
                        "SELECT lot_id, amount FROM point_takes WHERE entry_id = $1",
                        args![from.to_string()],
                    )
                    .await?;
                let mut given = 0;
                for t in &takes {
                    let amount = t.int("amount")?;
                    tx.execute(
                        "UPDATE point_lots SET remaining = remaining + $1 WHERE id = $2",
                        args![amount, t.text("lot_id")?],
                    )
                    .await?;
                    given += amount;
                }
                if given != p.amount {
                    return Err(StoreError::Constraint(format!(
                        "entry {from} took {given} points from its lots, not {}",
                        p.amount
                    )));
                }
            }
            LotMove::CopyTakes(from) => {
                tx.execute(
                    "INSERT INTO point_takes (entry_id, lot_id, amount) \
                     SELECT $1, lot_id, amount FROM point_takes WHERE entry_id = $2",
                    args![&id, from.to_string()],
                )
                .await?;
            }
            LotMove::ExpireLot { lot, amount } => {
                let expired = tx
                    .execute(
                        "UPDATE point_lots SET remaining = 0 WHERE id = $1 AND user_id = $2 \
                         AND remaining = $3",
                        args![lot.to_string(), &user, *amount],
                    )
                    .await?;
                if expired != 1 {
                    return Ok(Written::Raced);
                }
                tx.execute(
                    "INSERT INTO point_takes (entry_id, lot_id, amount) VALUES ($1, $2, $3)",
                    args![&id, lot.to_string(), *amount],
                )
                .await?;
            }
        }
    }
    if let HoldChange::Open {
        order_id,
        expires_at,
    } = &w.hold
    {
        let Some(hold) = entries.iter().find(|e| e.kind == EntryKind::Hold) else {
            return Err(StoreError::Constraint("a hold without its entry".into()));
        };
        let opened = tx
            .execute(
                "INSERT INTO point_holds (entry_id, user_id, order_id, amount, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                args![
                    hold.id.to_string(),
                    &user,
                    order_id,
                    -hold.amount,
                    w.now.0,
                    expires_at.0
                ],
            )
            .await?;
        if opened != 1 {
            // The order holds points already: a repeat, or another hold.
            return first_or(tx, w, seq, Written::Raced).await;
        }
    }
    let (last_seq, last_balance) = entries
        .last()
        .map_or((None, balance), |e| (Some(e.seq), e.balance_after));
    tx.execute(
        "UPDATE point_accounts SET seq = COALESCE($1, seq), balance = $2, held = $3 \
         WHERE user_id = $4",
        args![last_seq, last_balance, new_held, &user],
    )
    .await?;
    super::outbox::insert_reports(tx, &w.reports).await?;
    Ok(Written::Done(entries))
}

/// Where a write cannot go on (its entry or hold row would collide, or it
/// no longer fits): a repeat is found here, not looked for first, so the
/// common write pays no extra read. What the first time wrote (before this
/// write began at `seq`), else `otherwise`.
async fn first_or<S: Sql>(
    tx: &mut S,
    w: &LedgerWrite,
    seq: i64,
    otherwise: Written,
) -> Result<Written, StoreError> {
    let user = w.user.to_string();
    let mut found = None;
    if let Some(reference) = &w.reference {
        found = tx
            .fetch_optional(
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM point_entries WHERE user_id = $1 \
                     AND reference = $2 AND seq <= $3"
                ),
                args![&user, reference, seq],
            )
            .await?;
    }
    if let (None, HoldChange::Open { order_id, .. }) = (&found, &w.hold) {
        found = tx
            .fetch_optional(
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM point_entries WHERE id = \
                     (SELECT entry_id FROM point_holds WHERE user_id = $1 AND order_id = $2)"
                ),
                args![&user, order_id],
            )
            .await?;
    }
    let refunded = match w.postings.iter().find_map(|p| p.refund_of) {
        Some(spend) if found.is_none() => tx
            .fetch_optional(
                "SELECT id FROM point_entries WHERE refund_of = $1 AND user_id = $2 AND seq <= $3",
                args![spend.to_string(), &user, seq],
            )
            .await?
            .is_some(),
        _ => false,
    };
    Ok(match found {
        Some(row) => Written::Existing(entry(&row)?),
        None if refunded => Written::AlreadyRefunded,
        None => otherwise,
    })
}

/// [`PointStore`] for a store with a `pool` of database `$db`.
macro_rules! point_queries {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::PointStore for $store {
            async fn write_points(
                &self,
                w: &$crate::store::points::LedgerWrite,
            ) -> Result<$crate::store::points::Written, StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                let written = $crate::store::points::ledger_write(&mut *tx, w).await?;
                if matches!(written, $crate::store::points::Written::Done(_)) {
                    tx.commit().await?;
                } else {
                    tx.rollback().await?;
                }
                Ok(written)
            }

            async fn write_points_many(
                &self,
                writes: &[&$crate::store::points::LedgerWrite],
            ) -> Result<Vec<$crate::store::points::Written>, StoreError> {
                use sqlx::Acquire;
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                let mut out = Vec::with_capacity(writes.len());
                for w in writes {
                    let mut one = (&mut tx).begin().await?;
                    let written = $crate::store::points::ledger_write(&mut *one, w).await?;
                    if matches!(written, $crate::store::points::Written::Done(_)) {
                        one.commit().await?;
                    } else {
                        one.rollback().await?;
                    }
                    out.push(written);
                }
                tx.commit().await?;
                Ok(out)
            }

            fn batches_ledger_writes(&self) -> bool {
                self.write_turn_is_serial()
            }

            async fn point_balance(
                &self,
                user: UserId,
                now: Timestamp,
            ) -> Result<$crate::store::points::PointBalance, StoreError> {
                use $crate::store::columns::Columns as _;
                let mut b = $crate::store::points::PointBalance::default();
                if let Some(row) = sqlx::query("SELECT balance, held FROM point_accounts WHERE user_id = $1")
                    .bind(user.to_string())
                    .fetch_optional(&self.pool)
                    .await?
                {
                    b.balance = row.int("balance")?;
                    b.held = row.int("held")?;
                }
                let rows = sqlx::query(
                    "SELECT expires_at, CAST(SUM(remaining) AS BIGINT) AS amount FROM point_lots \
                     WHERE user_id = $1 AND remaining > 0 AND expires_at > $2 \
                     GROUP BY expires_at ORDER BY expires_at LIMIT 20",
                )
                .bind(user.to_string())
                .bind(now.0)
                .fetch_all(&self.pool)
                .await?;
                for r in &rows {
                    b.expiring.push((r.int("amount")?, Timestamp(r.int("expires_at")?)));
                }
                Ok(b)
            }

            async fn point_balance_only(&self, user: UserId) -> Result<i64, StoreError> {
                use $crate::store::columns::Columns as _;
                let balance = self
                    .read_one(
                        "SELECT balance FROM point_accounts WHERE user_id = $1",
                        $crate::store::sql::args![user.to_string()],
                        |row| Ok(row.int("balance")?),
                    )
                    .await?;
                Ok(balance.unwrap_or(0))
            }

            async fn point_history(
                &self,
                user: UserId,
                limit: u32,
                before: Option<uuid::Uuid>,
            ) -> Result<Vec<$crate::store::PointEntry>, StoreError> {
                let cols = $crate::store::points::ENTRY_COLUMNS;
                let rows = match before {
                    None => sqlx::query(&format!(
                        "SELECT {cols} FROM point_entries WHERE user_id = $1 ORDER BY seq DESC LIMIT $2"
                    ))
                    .bind(user.to_string())
                    .bind(limit as i64)
                    .fetch_all(&self.pool)
                    .await?,
                    Some(before) => sqlx::query(&format!(
                        "SELECT {cols} FROM point_entries WHERE user_id = $1 AND seq < \
                         (SELECT seq FROM point_entries WHERE id = $2 AND user_id = $1) \
                         ORDER BY seq DESC LIMIT $3"
                    ))
                    .bind(user.to_string())
                    .bind(before.to_string())
                    .bind(limit as i64)
                    .fetch_all(&self.pool)
                    .await?,
                };
                Ok(rows
                    .iter()
                    .map($crate::store::points::entry)
                    .collect::<Result<_, _>>()?)
            }

            async fn point_entry_by_reference(
                &self,
                user: UserId,
                reference: &str,
            ) -> Result<Option<$crate::store::PointEntry>, StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {} FROM point_entries WHERE user_id = $1 AND reference = $2",
                    $crate::store::points::ENTRY_COLUMNS
                ))
                .bind(user.to_string())
                .bind(reference)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map($crate::store::points::entry).transpose()?)
            }

            async fn point_holds_of_orders(
                &self,
                orders: &[&str],
            ) -> Result<Vec<$crate::store::PointHold>, StoreError> {
                if orders.is_empty() {
                    return Ok(Vec::new());
                }
                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM point_holds WHERE order_id IN (",
                    $crate::store::points::HOLD_COLUMNS
                ));
                let mut list = q.separated(", ");
                for order in orders {
                    list.push_bind(order.to_string());
                }
                q.push(") ORDER BY entry_id");
                let rows = q.build().fetch_all(&self.pool).await?;
                Ok(rows
                    .iter()
                    .map($crate::store::points::point_hold)
                    .collect::<Result<_, _>>()?)
            }

            async fn point_hold(
                &self,
                user: UserId,
                order_id: &str,
            ) -> Result<Option<$crate::store::PointHold>, StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {} FROM point_holds WHERE user_id = $1 AND order_id = $2",
                    $crate::store::points::HOLD_COLUMNS
                ))
                .bind(user.to_string())
                .bind(order_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map($crate::store::points::point_hold).transpose()?)
            }

            async fn order_point_spends(
                &self,
                order_id: &str,
            ) -> Result<Vec<$crate::store::PointEntry>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM point_entries s WHERE order_id = $1 AND kind = 'spend' \
                     AND NOT EXISTS (SELECT 1 FROM point_entries r WHERE r.refund_of = s.id) ORDER BY id",
                    $crate::store::points::ENTRY_COLUMNS
                ))
                .bind(order_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map($crate::store::points::entry)
                    .collect::<Result<_, _>>()?)
            }

            async fn due_point_holds(
                &self,
                now: Timestamp,
                limit: u32,
            ) -> Result<Vec<$crate::store::PointHold>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM point_holds WHERE state = 'held' AND expires_at <= $1 \
                     ORDER BY expires_at LIMIT $2",
                    $crate::store::points::HOLD_COLUMNS
                ))
                .bind(now.0)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map($crate::store::points::point_hold)
                    .collect::<Result<_, _>>()?)
            }

            async fn due_point_lots(
                &self,
                now: Timestamp,
                limit: u32,
            ) -> Result<Vec<$crate::store::PointLot>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, user_id, remaining, expires_at FROM point_lots \
                     WHERE remaining > 0 AND expires_at <= $1 ORDER BY expires_at, id LIMIT $2",
                )
                .bind(now.0)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map($crate::store::points::lot)
                    .collect::<Result<_, _>>()?)
            }

            async fn point_lots_to_warn(
                &self,
                now: Timestamp,
                until: Timestamp,
                limit: u32,
            ) -> Result<Vec<$crate::store::PointLot>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, user_id, remaining, expires_at FROM point_lots \
                     WHERE remaining > 0 AND warned = 0 AND expires_at > $1 AND expires_at <= $2 \
                     ORDER BY expires_at, id LIMIT $3",
                )
                .bind(now.0)
                .bind(until.0)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map($crate::store::points::lot)
                    .collect::<Result<_, _>>()?)
            }

            async fn mark_point_lots_warned(&self, lots: &[uuid::Uuid]) -> Result<(), StoreError> {
                if lots.is_empty() {
                    return Ok(());
                }
                let _turn = self.write_turn().await;
                // One row a statement, each its own transaction: a statement
                // over many lots would lock them in its own order while a
                // ledger write of their owner holds some (PostgreSQL: a
                // deadlock). A flag lost to a crash only warns twice at
                // worst, and the inbox's once-key stops that too.
                for id in lots {
                    sqlx::query("UPDATE point_lots SET warned = 1 WHERE id = $1")
                        .bind(id.to_string())
                        .execute(&self.pool)
                        .await?;
                }
                Ok(())
            }
        }
    };
}
pub(super) use point_queries;

/// The writes that end holds and refund spends: one place for the
/// entries each makes, whether a request, a payment event or the expiry
/// asks.
impl LedgerWrite {
    /// The entries this write makes, as they will read apart from their
    /// place in the chain (`seq`, `balance_after`): for the events that
    /// name them, built before the write.
    pub fn planned(&self) -> Vec<PointEntry> {
        chain(self, 0, i64::MAX / 2).unwrap_or_default()
    }

    /// A write of `user` at `now` that does nothing yet.
    pub fn new(user: UserId, now: Timestamp) -> Self {
        Self {
            user,
            now,
            reference: None,
            postings: Vec::new(),
            hold: HoldChange::None,
            held_delta: 0,
            reports: Reports::default(),
        }
    }

    /// Confirm the hold `hold` of `amount` points for `order_id`: it
    /// becomes a spend (the hold's points come back as a release, and the
    /// spend takes them again from the very lots the hold took, so a
    /// refund of the spend gives those back).
    pub fn confirm_hold(
        user: UserId,
        hold: Uuid,
        amount: i64,
        order_id: &str,
        now: Timestamp,
    ) -> Self {
        let spend = Uuid::now_v7();
        Self {
            postings: vec![
                Posting {
                    id: Uuid::now_v7(),
                    kind: EntryKind::Release,
                    amount,
                    reference: None,
                    reason: Some("hold confirmed: the order was paid".into()),
                    order_id: Some(order_id.to_owned()),
                    refund_of: None,
                    expires_at: None,
                    lots: LotMove::None,
                },
                Posting {
                    id: spend,
                    kind: EntryKind::Spend,
                    amount: -amount,
                    reference: None,
                    reason: Some("order paid".into()),
                    order_id: Some(order_id.to_owned()),
                    refund_of: None,
                    expires_at: None,
                    lots: LotMove::CopyTakes(hold),
                },
            ],
            hold: HoldChange::End {
                hold,
                to: HoldState::Confirmed,
            },
            held_delta: -amount,
            ..Self::new(user, now)
        }
    }

    /// End the hold as released or expired: its points go back to the lots
    /// they came from.
    pub fn end_hold(
        user: UserId,
        hold: Uuid,
        amount: i64,
        order_id: &str,
        to: HoldState,
        now: Timestamp,
    ) -> Self {
        let reason = if to == HoldState::Expired {
            "hold expired: the order was not paid in time"
        } else {
            "hold released"
        };
        Self {
            postings: vec![Posting {
                id: Uuid::now_v7(),
                kind: EntryKind::Release,
                amount,
                reference: None,
                reason: Some(reason.into()),
                order_id: Some(order_id.to_owned()),
                refund_of: None,
                expires_at: None,
                lots: LotMove::GiveBack(hold),
            }],
            hold: HoldChange::End { hold, to },
            held_delta: -amount,
            ..Self::new(user, now)
        }
    }

    /// Give a spend's points back to the lots it took them from (once).
    pub fn refund_spend(
        spend: &PointEntry,
        reference: Option<String>,
        reason: String,
        now: Timestamp,
    ) -> Self {
        Self {
            reference: reference.clone(),
            postings: vec![Posting {
                id: Uuid::now_v7(),
                kind: EntryKind::Refund,
                amount: -spend.amount,
                reference,
                reason: Some(reason),
                order_id: spend.order_id.clone(),
                refund_of: Some(spend.id),
                expires_at: None,
                lots: LotMove::GiveBack(spend.id),
            }],
            ..Self::new(spend.user_id, now)
        }
    }

    /// Expire what is left of these lots of one user, one entry each.
    pub fn expire_lots(user: UserId, lots: &[PointLot], now: Timestamp) -> Self {
        Self {
            postings: lots
                .iter()
                .map(|l| Posting {
                    id: Uuid::now_v7(),
                    kind: EntryKind::Expire,
                    amount: -l.remaining,
                    reference: None,
                    reason: Some("points expired".into()),
                    order_id: None,
                    refund_of: None,
                    expires_at: Some(l.expires_at),
                    lots: LotMove::ExpireLot {
                        lot: l.id,
                        amount: l.remaining,
                    },
                })
                .collect(),
            ..Self::new(user, now)
        }
    }
}
