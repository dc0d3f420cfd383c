//! The admission gate: decides every claim without touching the record —
//! in memory (embedded mode, [`MemoryGate`]) or in Redis with one Lua script
//! per claim (scale-out, [`RedisGate`]).
//!
//! The gate is a fast, exact cache of the record: it is rebuilt from the
//! coupons table (at start-up in memory; whenever Redis lost its data), and
//! every admitted claim is either committed by the group commit or released
//! back ([`Gate::settle`]). The database constraints stay the last line of
//! defence if the gate were ever wrong (promise 7).

mod campaign_gate;
mod memory;
pub mod redis;

use std::fmt::Debug;

use async_trait::async_trait;
use tokio::sync::watch;

pub use campaign_gate::{Admission, CampaignGate};
pub use memory::MemoryGate;
pub use redis::RedisGate;

use crate::domain::campaign::Campaign;
use crate::domain::ids::{CampaignId, CouponId, UserId};
use crate::domain::timestamp::Timestamp;

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
    Issued(CouponId),
    Failed,
}

/// The gate's answer to one claim.
#[derive(Debug)]
pub enum Decision {
    /// Stock and a user slot are taken: write the coupon, then settle.
    Admitted(Ticket),
    Rejected(Rejection),
    /// This Idempotency-Key already issued that coupon.
    Replay(CouponId),
    /// This Idempotency-Key's first request is still unsettled or failed:
    /// nothing new was taken, the client should retry.
    Retry(&'static str),
}

/// What an admitted claim holds until it is settled.
#[derive(Debug)]
pub struct Ticket {
    pub campaign: CampaignId,
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
    /// The coupon is durable.
    Committed(CouponId),
    /// It is certainly not in the record: give its stock back.
    Failed,
    /// The record's constraints refused it: the gate and the record disagree
    /// (promise 7 caught it). Not written; the gate should be rebuilt.
    Refused,
    /// The record could not say (it was unreachable): leave the claim to the
    /// reconciler, which asks again once the record answers.
    Unknown,
}

/// A coupon already in the record, fed to a gate rebuild.
#[derive(Debug)]
pub struct RestoredCoupon {
    pub id: CouponId,
    pub user: UserId,
    pub seq: u32,
    pub user_seq: u32,
    pub key: Option<String>,
}

/// A stock change that would drop below a seq already handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockBelowIssued {
    pub highest_seq: u32,
}

/// A campaign's live numbers, as the gate holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stock {
    pub total: u32,
    /// Not taken by an issued or in-flight claim.
    pub remaining: u32,
    /// Durable in the record.
    pub issued: u32,
    pub paused: bool,
    pub ends_at: Timestamp,
}

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("no such campaign")]
    NoSuchCampaign,
    /// The gate cannot decide now (Redis unreachable or being rebuilt):
    /// nothing was taken, fail closed.
    #[error("{0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Gate: Send + Sync + Debug {
    /// Make a newly created campaign claimable.
    async fn open(&self, campaign: &Campaign) -> Result<(), GateError>;
    /// Decide one claim: window, pause, Idempotency-Key, the user's limit and
    /// stock, atomically. A repeated key's first answer stands even after the
    /// window closes.
    /// `coupon` is the id the coupon will have if admitted: the gate keeps it
    /// with the claim in flight, so a reconciler can write exactly it off.
    async fn claim(
        &self,
        campaign: &Campaign,
        user: UserId,
        coupon: CouponId,
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
    async fn stock(&self, campaign: &Campaign) -> Result<Stock, GateError>;
    /// Change the stock; refused below the highest seq handed out. Returns
    /// the old total.
    async fn set_total(
        &self,
        campaign: &Campaign,
        total: u32,
    ) -> Result<Result<u32, StockBelowIssued>, GateError>;
    async fn set_paused(&self, campaign: &Campaign, paused: bool) -> Result<(), GateError>;
    async fn set_ends_at(&self, campaign: &Campaign, ends: Timestamp) -> Result<(), GateError>;
}
