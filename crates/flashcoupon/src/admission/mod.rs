//! The admission core: who gets one unit of a limited stock, first come first
//! served, and how that answer becomes durable. It knows *drops* (a kind of
//! stock and an id, with [`Terms`]: total, per-user limit, window, pause) and
//! *units* (one admitted claim, with its `seq` and `user_seq`); it does not
//! know what a coupon or an order is.
//!
//! - [`Gate`] decides every claim without touching the record: in memory
//!   (embedded mode, [`MemoryGate`]) or in Redis with one Lua script per claim
//!   (scale-out, [`RedisGate`]).
//! - [`GroupCommit`] writes admitted claims in batches, one transaction each,
//!   and settles them in the gate before anyone is answered.
//! - [`Stockpile`] is what a kind of stock plugs in (its rebuild from the
//!   record and its stale-claim check); [`Row`] and [`RowWriter`] are its row
//!   and how a batch of them is written.
//!
//! The gate is a fast, exact cache of the record: it is rebuilt from the
//! record (at start-up in memory; whenever Redis lost its data), and every
//! admitted claim is either committed by the group commit or released back
//! ([`Gate::settle`]). The record's constraints stay the last line of defence
//! if the gate were ever wrong (promise 7).

mod drop_gate;
mod group_commit;
mod memory;
#[cfg(test)]
mod model_tests;
mod reconcile;
pub mod redis;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt::{self, Debug};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use uuid::Uuid;

pub use drop_gate::{Admission, DropGate};
pub use group_commit::{
    CommitFailed, GroupCommit, Row, RowWriter, WriteError, WriterConfig, WriterHandle,
};
pub use memory::MemoryGate;
pub use reconcile::reconcile_forever;
pub use redis::RedisGate;

use crate::domain::ids::UserId;
use crate::domain::timestamp::Timestamp;

/// A kind of limited stock: the short tag its Redis keys carry
/// (`{<tag>:<id>}`, e.g. `c` for coupon campaigns) and what its drops are
/// called in messages (e.g. "campaign").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind {
    pub tag: &'static str,
    pub drop_name: &'static str,
    /// Can a committed unit of this kind come back to the stock (an order
    /// never paid)? Then the gate remembers which unit holds each committed
    /// seq, so [`Gate::give_back`] returns exactly that unit, once.
    pub returns: bool,
}

/// One drop: a kind of stock and the id of its drop (a campaign, a sale).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DropId {
    pub kind: Kind,
    pub id: Uuid,
}

impl fmt::Display for DropId {
    /// `<tag>:<uuid>`: also the Redis hash tag of the drop's keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.tag, self.id.as_hyphenated())
    }
}

/// The id an admitted unit will have in the record (a coupon id, an order
/// id): chosen before the claim, so a reconciler can write exactly it off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnitId(pub Uuid);

impl fmt::Display for UnitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.as_hyphenated(), f)
    }
}

impl UnitId {
    /// A fresh, time-ordered id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }
}

impl std::str::FromStr for UnitId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(s).map(Self)
    }
}

/// What a drop's claims are decided against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Terms {
    pub total: u32,
    pub per_user_limit: u32,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub paused: bool,
}

/// Why a claim was refused: expected outcomes, not errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    NotOpen,
    Ended,
    Paused,
    LimitReached,
    SoldOut,
}

/// How an admitted claim ended, as told to requests repeating its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    Issued(UnitId),
    Failed,
    /// The record refused it or could not say: settled at the next start-up.
    Unsettled,
}

/// The gate's answer to one claim.
#[derive(Debug)]
pub enum Decision {
    /// Stock and a user slot are taken: write the unit, then settle.
    Admitted(Ticket),
    Rejected(Rejection),
    /// This Idempotency-Key already took that unit.
    Replay(UnitId),
    /// This Idempotency-Key's first request is still unsettled or failed:
    /// nothing new was taken, the client should retry.
    Retry(&'static str),
}

/// What an admitted claim holds until it is settled.
#[derive(Debug)]
pub struct Ticket {
    pub drop: DropId,
    /// The id the unit will have: settling names it, so a late settle can
    /// only end this claim, never another that took its seq since.
    pub unit: UnitId,
    /// The gate generation that admitted it (always 0 in memory).
    pub epoch: u64,
    pub user: UserId,
    pub seq: u32,
    pub user_seq: u32,
    pub key: Option<Box<str>>,
    /// Wakes requests that repeated this claim's key while it was in flight.
    pub(crate) done: Option<watch::Sender<Option<Settled>>>,
}

/// How the record answered for an admitted claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The unit is durable.
    Committed(UnitId),
    /// It is certainly not in the record: give its stock back.
    Failed,
    /// The record's constraints refused it: the gate and the record disagree
    /// (promise 7 caught it). Not written; the gate should be rebuilt.
    Refused,
    /// The record could not say (it was unreachable): leave the claim to the
    /// reconciler, which asks again once the record answers.
    Unknown,
}

/// A unit already in the record, fed to a gate rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub id: UnitId,
    pub user: UserId,
    pub seq: u32,
    pub user_seq: u32,
    pub key: Option<String>,
    /// Given back to the stock since (an order that expired): its seq and
    /// slot are free; only its key is restored, so a repeat replays it.
    pub returned: bool,
}

/// What a gate rebuild starts from: the drop's live terms, its new gate
/// generation and every unit the record holds for it.
#[derive(Debug)]
pub struct Fenced {
    pub terms: Terms,
    pub epoch: u64,
    pub held: Vec<Held>,
}

/// A stock change that would drop below a seq already handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockBelowIssued {
    pub highest_seq: u32,
}

/// A drop's live numbers, as the gate holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stock {
    pub total: u32,
    /// Not taken by a durable or in-flight claim.
    pub remaining: u32,
    /// Durable in the record.
    pub issued: u32,
    pub paused: bool,
    pub ends_at: Timestamp,
}

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("no such drop")]
    NoSuchDrop,
    /// The gate cannot decide now (Redis unreachable or being rebuilt):
    /// nothing was taken, fail closed.
    #[error("{0}")]
    Unavailable(String),
}

/// What a kind of stock tells the admission core about its record. The core
/// calls it to rebuild a gate and to settle claims left in flight; it never
/// sees the rows themselves.
#[async_trait]
pub trait Stockpile: Send + Sync + Debug {
    fn kind(&self) -> Kind;
    /// Every drop of this kind with the units the record holds: the
    /// embedded gate's start-up.
    async fn load_all(&self) -> anyhow::Result<Vec<(Uuid, Terms, Vec<Held>)>>;
    /// Every drop of this kind (the reconciler's round).
    async fn drops(&self) -> anyhow::Result<Vec<Uuid>>;
    /// Start a new gate generation for a drop and read what it holds, as one
    /// step: commits of claims admitted by an older generation either
    /// finished before (and are in `held`) or are refused from now on.
    /// `Err(NoSuchDrop)` if the record has no such drop.
    async fn fence_and_load(&self, drop: Uuid) -> Result<Fenced, GateError>;
    /// For claims the gate still holds as in flight long after they were
    /// admitted (seq and the unit id each would have): which seqs landed, and
    /// as which unit. Commits for the drop that were running have finished
    /// when this answers, and the claims that had not landed are written off
    /// in the record, so no commit can land them later.
    async fn resolve_stale(
        &self,
        drop: Uuid,
        claims: &[(u32, UnitId)],
    ) -> anyhow::Result<HashMap<u32, Held>>;
}

#[async_trait]
pub trait Gate: Send + Sync + Debug {
    /// Make a newly created drop claimable.
    async fn open(&self, drop: DropId, terms: &Terms) -> Result<(), GateError>;
    /// Decide one claim: window, pause, Idempotency-Key, the user's limit and
    /// stock, atomically. A repeated key's first answer stands even after the
    /// window closes.
    /// `unit` is the id the unit will have if admitted: the gate keeps it
    /// with the claim in flight, so a reconciler can write exactly it off.
    async fn claim(
        &self,
        drop: DropId,
        user: UserId,
        unit: UnitId,
        key: Option<&str>,
        now: Timestamp,
    ) -> Result<Decision, GateError>;
    /// End admitted claims after their batch: committed ones become
    /// replayable keys, failed ones give their stock and slot back
    /// (promise 5). Best effort: what cannot be settled now is left in flight
    /// for the reconciler.
    async fn settle(&self, claims: Vec<(Ticket, Outcome)>);
    /// A claim dropped before its commit was tried (the writer stopped).
    /// Must not await: it runs in `Drop`.
    fn abandon(&self, ticket: Ticket);
    async fn stock(&self, drop: DropId) -> Result<Stock, GateError>;
    /// Change the stock; refused below the highest seq handed out. Returns
    /// the old total.
    async fn set_total(
        &self,
        drop: DropId,
        total: u32,
    ) -> Result<Result<u32, StockBelowIssued>, GateError>;
    async fn set_paused(&self, drop: DropId, paused: bool) -> Result<(), GateError>;
    /// Give a committed unit back to the stock (an order never paid): its
    /// seq is handed out again, lowest first, and its user's slot is free;
    /// its key still replays it. Only the unit named (seq, user, slot and
    /// id) is given back, and only once: a repeat, or a unit this gate does
    /// not hold (it was rebuilt since from a record that had it ended
    /// already), changes nothing. `Ok(true)` if this call gave it back.
    /// Call it after the record ended the unit, never before: a gate
    /// rebuilt in between must read the unit as ended.
    async fn give_back(&self, drop: DropId, unit: &Held) -> Result<bool, GateError>;
    async fn set_ends_at(&self, drop: DropId, ends: Timestamp) -> Result<(), GateError>;
    /// Is the gate reachable? (Always, in memory.)
    async fn ping(&self) -> Result<(), GateError> {
        Ok(())
    }
    /// Does this gate keep claims in flight for a reconciler to settle? A
    /// gate in one process settles every claim itself.
    fn needs_reconciler(&self) -> bool {
        false
    }
    /// Settle a drop's claims in flight longer than `older_than` from what
    /// the record holds. Returns how many were settled.
    async fn reconcile(&self, _drop: DropId, _older_than: Duration) -> anyhow::Result<usize> {
        Ok(0)
    }
}
