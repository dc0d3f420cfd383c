//! Claiming a coupon, the hot path: the gate decides (in memory, or in one
//! Redis script in scale-out mode), the group commit makes an admitted claim
//! durable, and only then is it "issued". Every door into a claim (the
//! button, a shared or unique code, a trigger) calls [`claim`], which also
//! counts the answer and tells the user, so no door can forget to; and a
//! campaign opens only the door its `issuance` names.
//!
//! ```text
//! rate limit ── refused ───────────────────────────────▶ rate_limited
//! gate.claim(user, key, now) ── Rejected ──────────────▶ sold_out / limit_reached / …
//!          │ Admitted(ticket: seq, user_seq)
//!          ▼
//! group_commit.submit(row) ── batch committed ─────────▶ issued (durable)
//!                          └─ commit failed (stock back) ▶ unavailable
//! then: metrics, dashboard statistics, the user's notification
//! ```

use std::time::Instant;

use super::drop_of;
use crate::admission::{Decision, GateError, Rejection, UnitId};
use crate::claim_stats;
use crate::domain::campaign::{Campaign, Issuance};
use crate::domain::coupon::{Coupon, StoredStatus};
use crate::domain::ids::{CampaignId, CouponId, UserId};
use crate::rate_limit::RetryAfter;
use crate::state::Shared;
use crate::store::{NewCouponRow, StoreError};

#[derive(Debug)]
pub enum ClaimOutcome {
    /// Issued now, and durable.
    Issued(Coupon),
    /// This Idempotency-Key issued this coupon before.
    Replayed(Coupon),
    Rejected(Rejection),
}

/// Which door a claim comes through. A campaign opens only its own: a
/// `codes` campaign is not issued by the button, a trigger's not by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Door {
    /// The claim button (`POST /campaigns/{id}/issue`).
    Button,
    /// The campaign's shared code.
    SharedCode,
    /// A unique code, written on the coupon (the record takes it once).
    Code(Box<str>),
    /// The campaign's trigger event.
    Trigger,
}

impl Door {
    /// Whether `campaign` issues through this door; if not, why not.
    fn opens(&self, campaign: &Campaign) -> Result<(), &'static str> {
        let open = match self {
            Door::Button => campaign.claimable_by_button(),
            Door::SharedCode => campaign.issuance == Issuance::SharedCode,
            Door::Code(_) => campaign.issuance == Issuance::Codes,
            Door::Trigger => campaign.trigger.is_some(),
        };
        if open {
            return Ok(());
        }
        Err(match (campaign.issuance, &campaign.trigger) {
            (Issuance::Codes | Issuance::SharedCode, _) => {
                "this campaign is issued by code: redeem it at POST /api/v1/codes/redeem"
            }
            (Issuance::Claim, Some(_)) => {
                "this campaign issues its coupons by itself, on its trigger event"
            }
            (Issuance::Claim, None) => "this campaign is claimed with its button, not by code",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("no such campaign")]
    NoSuchCampaign,
    /// The campaign is not issued through this door.
    #[error("{0}")]
    NotClaimable(&'static str),
    #[error("too many claims; retry in {} s", .0.secs)]
    RateLimited(RetryAfter),
    /// Nothing was issued; the stock went back to the pool (or will, once
    /// the reconciler checked the record).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<GateError> for ClaimError {
    fn from(e: GateError) -> Self {
        match e {
            GateError::NoSuchDrop => ClaimError::NoSuchCampaign,
            GateError::Unavailable(why) => ClaimError::Unavailable(why),
        }
    }
}

pub type ClaimResult = Result<ClaimOutcome, ClaimError>;

/// The stable code and the shopper's message of a refused claim: the API's
/// error, the metric's label and the notification all say the same.
pub fn refusal(r: Rejection) -> (&'static str, &'static str) {
    match r {
        Rejection::SoldOut => ("sold_out", "no coupons left"),
        Rejection::LimitReached => (
            "limit_reached",
            "you already hold as many as one person may",
        ),
        Rejection::NotOpen => ("not_open", "issuing has not started yet"),
        Rejection::Ended => ("ended", "issuing has ended"),
        Rejection::Paused => ("paused", "issuing is paused"),
    }
}

/// What the shopper is told when storage could not answer.
const STORAGE_UNAVAILABLE: &str = "storage is unavailable; retry shortly";

/// Claim one coupon through the per-user rate limit, then count the answer
/// (metrics, the dashboard) and tell the user of a refusal.
pub async fn claim(
    state: &Shared,
    campaign: CampaignId,
    user: UserId,
    key: Option<&str>,
    door: Door,
) -> ClaimResult {
    let started = Instant::now();
    // Nobody asked for a trigger's coupon: a refusal is not news to them.
    let tell = door != Door::Trigger;
    // A trigger's claims are the server's own, not the user's clicks.
    let limited = match door {
        Door::Trigger => Ok(()),
        _ => state.limits.check_claim(user),
    };
    let result = match limited {
        Err(wait) => Err(ClaimError::RateLimited(wait)),
        Ok(()) => claim_coupon(state, campaign, user, key, door).await,
    };
    record(state, campaign, user, &result, started, tell);
    result
}

/// How the answer is counted and told. Unknown campaigns get no dashboard
/// entry (made-up ids cannot grow the table) and no notification; neither do
/// rate limits, which describe the request rather than the campaign.
fn record(
    state: &Shared,
    campaign: CampaignId,
    user: UserId,
    result: &ClaimResult,
    started: Instant,
    tell: bool,
) {
    let took = started.elapsed();
    let (label, bucket) = counted(result);
    state.metrics.issue_latency.observe(took.as_secs_f64());
    state
        .metrics
        .issue_outcomes
        .with_label_values(&[label])
        .inc();
    if let Some(bucket) = bucket
        && state.catalog.contains(campaign)
    {
        state
            .claim_stats
            .record(campaign, bucket, took, state.clock.now());
    }
    let told = match result {
        Ok(ClaimOutcome::Rejected(r)) => Some(refusal(*r)),
        Err(ClaimError::Unavailable(why)) => Some(("unavailable", why.as_str())),
        Err(ClaimError::Store(e)) if e.is_unavailable() => {
            Some(("unavailable", STORAGE_UNAVAILABLE))
        }
        _ => None,
    };
    if let Some((code, message)) = told.filter(|_| tell) {
        state.notifier.claim_failed(user, campaign, code, message);
    }
}

/// The `result` label of `flashcoupon_issue_outcomes_total` and the
/// dashboard's bucket (none for an unknown campaign) of one answer.
fn counted(result: &ClaimResult) -> (&'static str, Option<claim_stats::Outcome>) {
    use claim_stats::Outcome as Bucket;
    match result {
        Ok(ClaimOutcome::Issued(_)) => ("issued", Some(Bucket::Issued)),
        Ok(ClaimOutcome::Replayed(_)) => ("replayed", Some(Bucket::Replayed)),
        Ok(ClaimOutcome::Rejected(r)) => (
            refusal(*r).0,
            Some(match r {
                Rejection::SoldOut => Bucket::SoldOut,
                Rejection::LimitReached => Bucket::LimitReached,
                Rejection::NotOpen => Bucket::NotOpen,
                Rejection::Ended => Bucket::Ended,
                Rejection::Paused => Bucket::Paused,
            }),
        ),
        Err(ClaimError::NoSuchCampaign) => ("not_found", None),
        Err(ClaimError::NotClaimable(_)) => ("not_claimable", None),
        Err(ClaimError::RateLimited(_)) => ("rate_limited", Some(Bucket::RateLimited)),
        Err(ClaimError::Unavailable(_)) => ("unavailable", Some(Bucket::Unavailable)),
        Err(ClaimError::Store(e)) if e.is_unavailable() => {
            ("unavailable", Some(Bucket::Unavailable))
        }
        Err(ClaimError::Store(_)) => ("error", Some(Bucket::Unavailable)),
    }
}

/// The claim itself: gate, then group commit. Counts nothing.
pub async fn claim_coupon(
    state: &Shared,
    campaign: CampaignId,
    user: UserId,
    key: Option<&str>,
    door: Door,
) -> ClaimResult {
    let terms = state
        .catalog
        .get(&*state.store, campaign)
        .await
        .map_err(|e| ClaimError::Unavailable(format!("the record is unreachable: {e}")))?
        .ok_or(ClaimError::NoSuchCampaign)?;
    door.opens(&terms).map_err(ClaimError::NotClaimable)?;
    let now = state.clock.now();
    let id = CouponId::generate();
    match state
        .gate
        .claim(drop_of(campaign), user, UnitId(id.0), key, now)
        .await?
    {
        Decision::Rejected(reason) => Ok(ClaimOutcome::Rejected(reason)),
        Decision::Replay(unit) => replay(state, CouponId(unit.0)).await,
        Decision::Retry(why) => Err(ClaimError::Unavailable(why.into())),
        Decision::Admitted(ticket) => {
            let (valid_from, valid_until) = terms.terms.validity.for_issue(now);
            let row = NewCouponRow {
                id,
                campaign_id: campaign,
                user_id: user,
                seq: ticket.seq,
                user_seq: ticket.user_seq,
                idempotency_key: ticket.key.clone(),
                issued_at: now,
                valid_from,
                valid_until,
                gate_epoch: ticket.epoch,
                code: match door {
                    Door::Code(code) => Some(code),
                    _ => None,
                },
                trace: crate::trace::current(),
            };
            let coupon = Coupon {
                id: row.id,
                campaign_id: campaign,
                user_id: user,
                seq: row.seq,
                stored_status: StoredStatus::Available,
                issued_at: now,
                valid_from,
                valid_until,
                terms: terms.terms.clone(),
                spend: None,
                reservation: None,
            };
            match state.commit.submit(ticket, row).await {
                Ok(Ok(())) => {
                    state.notifier.coupon_issued(&coupon);
                    Ok(ClaimOutcome::Issued(coupon))
                }
                Ok(Err(failed)) => Err(ClaimError::Unavailable(format!(
                    "the coupon could not be recorded: {failed}"
                ))),
                Err(_) => Err(ClaimError::Unavailable(
                    "the writer stopped before answering".into(),
                )),
            }
        }
    }
}

async fn replay(state: &Shared, id: CouponId) -> ClaimResult {
    // The gate only learns a key's coupon after it committed, so it is there.
    let coupon =
        state.store.get_coupon(id).await?.ok_or_else(|| {
            ClaimError::Unavailable("the replayed coupon is not readable yet".into())
        })?;
    Ok(ClaimOutcome::Replayed(coupon))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claim_stats::Outcome as Bucket;

    #[test]
    fn answers_are_labelled_and_bucketed_as_the_dashboard_groups_them() {
        let rejected = |r| counted(&Ok(ClaimOutcome::Rejected(r)));
        assert_eq!(
            rejected(Rejection::Paused),
            ("paused", Some(Bucket::Paused))
        );
        assert_eq!(
            rejected(Rejection::NotOpen),
            ("not_open", Some(Bucket::NotOpen))
        );
        assert_eq!(
            rejected(Rejection::SoldOut),
            ("sold_out", Some(Bucket::SoldOut))
        );
        assert_eq!(
            counted(&Err(ClaimError::Unavailable("x".into()))),
            ("unavailable", Some(Bucket::Unavailable))
        );
        assert_eq!(
            counted(&Err(ClaimError::RateLimited(RetryAfter { secs: 1 }))),
            ("rate_limited", Some(Bucket::RateLimited))
        );
        assert_eq!(
            counted(&Err(ClaimError::NoSuchCampaign)),
            ("not_found", None)
        );
    }
}
