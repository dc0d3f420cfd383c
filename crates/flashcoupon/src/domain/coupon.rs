//! Coupons: their status at an instant, and the rules for spending one and
//! for cancelling a spend.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::InvalidInput;
use super::campaign::CouponTerms;
use super::discount::MAX_MONEY;
use super::ids::{CampaignId, CouponId, UserId};
use super::timestamp::Timestamp;
use super::whole;

/// The status kept in the record. `expired` is not stored: it is what an
/// `available` coupon shows once its validity has passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredStatus {
    Available,
    Reserved,
    Used,
}

impl StoredStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StoredStatus::Available => "available",
            StoredStatus::Reserved => "reserved",
            StoredStatus::Used => "used",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "available" => Some(StoredStatus::Available),
            "reserved" => Some(StoredStatus::Reserved),
            "used" => Some(StoredStatus::Used),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CouponStatus {
    Available,
    Reserved,
    Used,
    Expired,
}

/// A spend recorded on a coupon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spend {
    pub order_id: String,
    pub order_amount: i64,
    pub discount_amount: i64,
    pub used_at: Timestamp,
}

/// A live hold of a coupon for an order (status `reserved`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    pub order_id: String,
    pub order_amount: i64,
    pub discount_amount: i64,
    pub expires_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coupon {
    pub id: CouponId,
    pub campaign_id: CampaignId,
    pub user_id: UserId,
    pub seq: u32,
    pub stored_status: StoredStatus,
    pub issued_at: Timestamp,
    pub valid_from: Timestamp,
    pub valid_until: Timestamp,
    pub terms: CouponTerms,
    pub spend: Option<Spend>,
    pub reservation: Option<Reservation>,
}

/// Why a spend was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UseRejection {
    AlreadyUsed,
    Expired,
    NotYetValid,
    BelowMinOrder,
    Reserved,
    /// The order's own reservation ran out (a reserve or a confirm too late).
    ReservationExpired,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UseDecision {
    /// Spend it now with this discount.
    Apply {
        discount_amount: i64,
    },
    /// The same order already spent it: answer as the first time.
    Replay(Spend),
    Reject(UseRejection),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReserveDecision {
    /// Hold it for the order with this discount.
    Hold { discount_amount: i64 },
    /// The order already holds it: answer as the first time.
    Replay(Reservation),
}

/// The body of `POST /api/v1/coupons/{id}/use`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UseRequest {
    /// 1 to 128 characters, no control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    pub order_id: String,
    #[serde(deserialize_with = "whole::number")]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub order_amount: i64,
}

impl UseRequest {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_order(&self.order_id, self.order_amount)
    }
}

/// An order as a spend or a reservation names it: its id and its amount.
pub fn check_order(order_id: &str, order_amount: i64) -> Result<(), InvalidInput> {
    check_order_id(order_id)?;
    if !(0..=MAX_MONEY).contains(&order_amount) {
        return Err(InvalidInput::new(
            "order_amount",
            format!("must be between 0 and {MAX_MONEY}"),
        ));
    }
    Ok(())
}

/// The body of `POST /api/v1/coupons/{id}/cancel-use`, `/confirm` and
/// `/release`: the order the spend or the hold is for.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRef {
    /// 1 to 128 characters, no control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    pub order_id: String,
}

pub fn check_order_id(order_id: &str) -> Result<(), InvalidInput> {
    check_reference("order_id", order_id)
}

/// An id a client names (an order, an event): 1 to 128 characters without
/// control characters.
pub fn check_reference(field: &'static str, value: &str) -> Result<(), InvalidInput> {
    let chars = value.chars().count();
    if !(1..=128).contains(&chars) || value.chars().any(char::is_control) {
        return Err(InvalidInput::new(
            field,
            "must be 1 to 128 characters without control characters",
        ));
    }
    Ok(())
}

impl Coupon {
    /// Valid on `[valid_from, valid_until)`.
    pub fn status(&self, now: Timestamp) -> CouponStatus {
        match self.stored_status {
            StoredStatus::Used => CouponStatus::Used,
            StoredStatus::Reserved => CouponStatus::Reserved,
            StoredStatus::Available if now >= self.valid_until => CouponStatus::Expired,
            StoredStatus::Available => CouponStatus::Available,
        }
    }

    pub fn decide_use(&self, order_id: &str, order_amount: i64, now: Timestamp) -> UseDecision {
        match (&self.stored_status, &self.spend) {
            (StoredStatus::Used, Some(spend)) if spend.order_id == order_id => {
                return UseDecision::Replay(spend.clone());
            }
            (StoredStatus::Used, _) => return UseDecision::Reject(UseRejection::AlreadyUsed),
            (StoredStatus::Reserved, _) => return UseDecision::Reject(UseRejection::Reserved),
            (StoredStatus::Available, _) => {}
        }
        match self.discount_now(order_amount, now) {
            Ok(discount_amount) => UseDecision::Apply { discount_amount },
            Err(r) => UseDecision::Reject(r),
        }
    }

    /// May this coupon be held for `order_id` now, and with what discount?
    /// The same order's live hold answers as the first time.
    pub fn decide_reserve(
        &self,
        order_id: &str,
        order_amount: i64,
        now: Timestamp,
    ) -> Result<ReserveDecision, UseRejection> {
        match (&self.stored_status, &self.reservation) {
            (StoredStatus::Reserved, Some(r)) if r.order_id == order_id => {
                if now >= r.expires_at {
                    return Err(UseRejection::ReservationExpired);
                }
                return Ok(ReserveDecision::Replay(r.clone()));
            }
            (StoredStatus::Reserved, _) => return Err(UseRejection::Reserved),
            (StoredStatus::Used, _) => return Err(UseRejection::AlreadyUsed),
            (StoredStatus::Available, _) => {}
        }
        self.discount_now(order_amount, now)
            .map(|discount_amount| ReserveDecision::Hold { discount_amount })
    }

    /// The discount an available coupon gives this order now, or why none.
    fn discount_now(&self, order_amount: i64, now: Timestamp) -> Result<i64, UseRejection> {
        if now >= self.valid_until {
            Err(UseRejection::Expired)
        } else if now < self.valid_from {
            Err(UseRejection::NotYetValid)
        } else if order_amount < self.terms.min_order_amount {
            Err(UseRejection::BelowMinOrder)
        } else {
            Ok(self.terms.discount.amount_for(order_amount))
        }
    }

    /// A spend can be cancelled only by the order that made it.
    pub fn can_cancel_use(&self, order_id: &str) -> bool {
        matches!(&self.spend, Some(s) if self.stored_status == StoredStatus::Used && s.order_id == order_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_id_is_counted_in_characters_not_bytes() {
        assert!(
            check_order_id(&"주".repeat(128)).is_ok(),
            "128 Korean characters"
        );
        assert!(check_order_id(&"주".repeat(129)).is_err());
        assert!(check_order_id("").is_err());
        assert!(
            check_order_id("A-1\u{85}").is_err(),
            "a C1 control character"
        );
    }
    use crate::domain::campaign::Validity;
    use crate::domain::discount::Discount;

    fn coupon() -> Coupon {
        Coupon {
            id: CouponId::generate(),
            campaign_id: CampaignId::generate(),
            user_id: UserId::generate(),
            seq: 1,
            stored_status: StoredStatus::Available,
            issued_at: Timestamp(1_000),
            valid_from: Timestamp(1_000),
            valid_until: Timestamp(2_000),
            terms: CouponTerms {
                discount: Discount::Fixed { amount: 5_000 },
                min_order_amount: 30_000,
                validity: Validity::Days(1),
            },
            spend: None,
            reservation: None,
        }
    }

    #[test]
    fn validity_is_half_open() {
        let c = coupon();
        assert_eq!(
            c.decide_use("o", 30_000, Timestamp(999)),
            UseDecision::Reject(UseRejection::NotYetValid)
        );
        assert_eq!(
            c.decide_use("o", 30_000, Timestamp(1_000)),
            UseDecision::Apply {
                discount_amount: 5_000
            }
        );
        assert_eq!(
            c.decide_use("o", 30_000, Timestamp(1_999)),
            UseDecision::Apply {
                discount_amount: 5_000
            }
        );
        assert_eq!(
            c.decide_use("o", 30_000, Timestamp(2_000)),
            UseDecision::Reject(UseRejection::Expired)
        );
        assert_eq!(c.status(Timestamp(1_999)), CouponStatus::Available);
        assert_eq!(c.status(Timestamp(2_000)), CouponStatus::Expired);
    }

    #[test]
    fn a_minimum_order_exactly_met_is_enough() {
        let c = coupon();
        assert_eq!(
            c.decide_use("o", 29_999, Timestamp(1_500)),
            UseDecision::Reject(UseRejection::BelowMinOrder)
        );
        assert_eq!(
            c.decide_use("o", 30_000, Timestamp(1_500)),
            UseDecision::Apply {
                discount_amount: 5_000
            }
        );
    }

    #[test]
    fn a_used_coupon_replays_for_its_order_and_refuses_others() {
        let spend = Spend {
            order_id: "A-1".into(),
            order_amount: 40_000,
            discount_amount: 5_000,
            used_at: Timestamp(1_500),
        };
        let c = Coupon {
            stored_status: StoredStatus::Used,
            spend: Some(spend.clone()),
            ..coupon()
        };
        // Replays even after expiry: the spend happened while it was valid.
        assert_eq!(
            c.decide_use("A-1", 1, Timestamp(5_000)),
            UseDecision::Replay(spend)
        );
        assert_eq!(
            c.decide_use("B-2", 40_000, Timestamp(1_600)),
            UseDecision::Reject(UseRejection::AlreadyUsed)
        );
        assert!(c.can_cancel_use("A-1"));
        assert!(!c.can_cancel_use("B-2"));
        assert!(!coupon().can_cancel_use("A-1"));
    }

    #[test]
    fn a_reserved_coupon_cannot_be_spent() {
        let c = Coupon {
            stored_status: StoredStatus::Reserved,
            ..coupon()
        };
        assert_eq!(
            c.decide_use("o", 30_000, Timestamp(1_500)),
            UseDecision::Reject(UseRejection::Reserved)
        );
    }

    #[test]
    fn order_input_is_checked() {
        assert!(
            UseRequest {
                order_id: "".into(),
                order_amount: 1
            }
            .validate()
            .is_err()
        );
        assert!(
            UseRequest {
                order_id: "x".repeat(129),
                order_amount: 1
            }
            .validate()
            .is_err()
        );
        assert!(
            UseRequest {
                order_id: "o".into(),
                order_amount: -1
            }
            .validate()
            .is_err()
        );
        assert!(
            UseRequest {
                order_id: "o".into(),
                order_amount: 0
            }
            .validate()
            .is_ok()
        );
    }
}
