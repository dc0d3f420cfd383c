//! The JSON shapes the API answers with (API.md's campaign and coupon objects).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::admission::Stock;
use crate::domain::campaign::{Campaign, CampaignStatus, Issuance, Validity, campaign_status};
use crate::domain::coupon::{Coupon, CouponStatus};
use crate::domain::discount::Discount;
use crate::domain::ids::{CampaignId, CouponId, UserId};
use crate::domain::timestamp::Timestamp;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CampaignView {
    pub id: CampaignId,
    pub name: String,
    pub discount: Discount,
    pub min_order_amount: i64,
    pub total_quantity: u32,
    pub per_user_limit: u32,
    pub issue_starts_at: Timestamp,
    pub issue_ends_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<Timestamp>,
    pub paused: bool,
    /// Coupons durably issued.
    pub issued_count: u32,
    /// Coupons not taken by an issued or in-flight claim.
    pub remaining_quantity: u32,
    pub status: CampaignStatus,
    pub created_at: Timestamp,
    /// `claim`, `codes` or `shared_code`.
    pub issuance: Issuance,
    /// A `shared_code` campaign's public code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// What issues its coupons by itself, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
}

impl CampaignView {
    /// The stored campaign with its live numbers (stock, pause, end) from the gate.
    pub fn new(c: &Campaign, gate: &Stock, now: Timestamp) -> Self {
        let (valid_days, valid_from, valid_until) = match c.terms.validity {
            Validity::Days(d) => (Some(d), None, None),
            Validity::Window { from, until } => (None, from, Some(until)),
        };
        let remaining = gate.remaining;
        Self {
            id: c.id,
            name: c.name.clone(),
            discount: c.terms.discount,
            min_order_amount: c.terms.min_order_amount,
            total_quantity: gate.total,
            per_user_limit: c.per_user_limit,
            issue_starts_at: c.issue_starts_at,
            issue_ends_at: gate.ends_at,
            valid_days,
            valid_from,
            valid_until,
            paused: gate.paused,
            issued_count: gate.issued,
            remaining_quantity: remaining,
            status: campaign_status(now, c.issue_starts_at, gate.ends_at, gate.paused, remaining),
            created_at: c.created_at,
            issuance: c.issuance,
            code: c.code.clone(),
            trigger: c.trigger.as_ref().map(|t| t.to_string()),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CouponView {
    pub id: CouponId,
    pub campaign_id: CampaignId,
    pub user_id: UserId,
    /// Rank 1..total in issue order.
    pub seq: u32,
    pub status: CouponStatus,
    pub issued_at: Timestamp,
    pub valid_from: Timestamp,
    pub valid_until: Timestamp,
    pub discount: Discount,
    pub min_order_amount: i64,
    pub used_at: Option<Timestamp>,
    /// The order that used it, or that holds it (`reserved`).
    pub order_id: Option<String>,
    /// `reserved`: when the hold runs out unless the order is paid first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_until: Option<Timestamp>,
}

impl CouponView {
    pub fn new(c: &Coupon, now: Timestamp) -> Self {
        Self {
            id: c.id,
            campaign_id: c.campaign_id,
            user_id: c.user_id,
            seq: c.seq,
            status: c.status(now),
            issued_at: c.issued_at,
            valid_from: c.valid_from,
            valid_until: c.valid_until,
            discount: c.terms.discount,
            min_order_amount: c.terms.min_order_amount,
            used_at: c.spend.as_ref().map(|s| s.used_at),
            order_id: c
                .spend
                .as_ref()
                .map(|s| s.order_id.clone())
                .or_else(|| c.reservation.as_ref().map(|r| r.order_id.clone())),
            reserved_until: c.reservation.as_ref().map(|r| r.expires_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CouponList {
    pub coupons: Vec<CouponView>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<CouponId>,
}
