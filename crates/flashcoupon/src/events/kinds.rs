//! The one list of event types, each with its typed payload. Push, inbox,
//! webhooks (and next the outbox) all take their type names and payload
//! shapes from here, so a client sees the same `type` and `data` wherever
//! an event reaches it.

use serde::{Deserialize, Serialize};

use crate::domain::ids::{CouponId, OrderId, SaleId};
use crate::domain::sale::{Order, OrderStatus};
use crate::domain::timestamp::Timestamp;

/// An event's type, as sent to clients, stored in the inbox and offered to
/// webhooks (`"coupon.issued"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "coupon.issued")]
    CouponIssued,
    #[serde(rename = "coupon.claim_failed")]
    ClaimFailed,
    #[serde(rename = "coupon.used")]
    CouponUsed,
    #[serde(rename = "coupon.use_cancelled")]
    UseCancelled,
    #[serde(rename = "coupon.expiring_soon")]
    ExpiringSoon,
    #[serde(rename = "coupon.reservation_expired")]
    ReservationExpired,
    #[serde(rename = "campaign.opening_soon")]
    OpeningSoon,
    #[serde(rename = "campaign.opened")]
    Opened,
    #[serde(rename = "campaign.sold_out")]
    SoldOut,
    #[serde(rename = "campaign.stock_low")]
    StockLow,
    /// A payment for a hold that had already run out: the shop refunds it.
    #[serde(rename = "payment.after_expiry")]
    PaymentAfterExpiry,
    /// Not a notification: tells live channels a campaign's settings changed.
    #[serde(rename = "campaign.updated")]
    CampaignUpdated,
    #[serde(rename = "points.earned")]
    PointsEarned,
    #[serde(rename = "points.spent")]
    PointsSpent,
    #[serde(rename = "points.expiring_soon")]
    PointsExpiringSoon,
    #[serde(rename = "order.created")]
    OrderCreated,
    #[serde(rename = "order.paid")]
    OrderPaid,
    #[serde(rename = "order.expired")]
    OrderExpired,
    #[serde(rename = "order.cancelled")]
    OrderCancelled,
    #[serde(rename = "order.refunded")]
    OrderRefunded,
    #[serde(rename = "sale.opening_soon")]
    SaleOpeningSoon,
    #[serde(rename = "sale.opened")]
    SaleOpened,
    #[serde(rename = "sale.sold_out")]
    SaleSoldOut,
}

impl EventKind {
    pub const ALL: [EventKind; 23] = [
        EventKind::CouponIssued,
        EventKind::ClaimFailed,
        EventKind::ExpiringSoon,
        EventKind::OpeningSoon,
        EventKind::Opened,
        EventKind::SoldOut,
        EventKind::StockLow,
        EventKind::CouponUsed,
        EventKind::UseCancelled,
        EventKind::ReservationExpired,
        EventKind::PaymentAfterExpiry,
        EventKind::CampaignUpdated,
        EventKind::PointsEarned,
        EventKind::PointsSpent,
        EventKind::PointsExpiringSoon,
        EventKind::OrderCreated,
        EventKind::OrderPaid,
        EventKind::OrderExpired,
        EventKind::OrderCancelled,
        EventKind::OrderRefunded,
        EventKind::SaleOpeningSoon,
        EventKind::SaleOpened,
        EventKind::SaleSoldOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::CouponIssued => "coupon.issued",
            EventKind::ClaimFailed => "coupon.claim_failed",
            EventKind::CouponUsed => "coupon.used",
            EventKind::UseCancelled => "coupon.use_cancelled",
            EventKind::ExpiringSoon => "coupon.expiring_soon",
            EventKind::ReservationExpired => "coupon.reservation_expired",
            EventKind::OpeningSoon => "campaign.opening_soon",
            EventKind::Opened => "campaign.opened",
            EventKind::SoldOut => "campaign.sold_out",
            EventKind::StockLow => "campaign.stock_low",
            EventKind::PaymentAfterExpiry => "payment.after_expiry",
            EventKind::CampaignUpdated => "campaign.updated",
            EventKind::PointsEarned => "points.earned",
            EventKind::PointsSpent => "points.spent",
            EventKind::PointsExpiringSoon => "points.expiring_soon",
            EventKind::OrderCreated => "order.created",
            EventKind::OrderPaid => "order.paid",
            EventKind::OrderExpired => "order.expired",
            EventKind::OrderCancelled => "order.cancelled",
            EventKind::OrderRefunded => "order.refunded",
            EventKind::SaleOpeningSoon => "sale.opening_soon",
            EventKind::SaleOpened => "sale.opened",
            EventKind::SaleSoldOut => "sale.sold_out",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// May a shop's webhook endpoint ask for it?
    pub fn for_webhooks(self) -> bool {
        matches!(
            self,
            EventKind::Opened
                | EventKind::SoldOut
                | EventKind::SaleOpened
                | EventKind::SaleSoldOut
                | EventKind::StockLow
                | EventKind::CouponUsed
                | EventKind::UseCancelled
                | EventKind::PaymentAfterExpiry
        )
    }

    /// The types a webhook endpoint may ask for, by name.
    pub fn webhook_names() -> Vec<&'static str> {
        Self::ALL
            .into_iter()
            .filter(|k| k.for_webhooks())
            .map(Self::as_str)
            .collect()
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A time-sale order, as its events tell it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderNews {
    pub order_id: OrderId,
    pub sale_id: SaleId,
    pub seq: u32,
    pub status: OrderStatus,
    pub payable_amount: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coupon_id: Option<CouponId>,
    #[serde(skip_serializing_if = "is_zero")]
    pub points_used: i64,
}

impl OrderNews {
    pub fn of(o: &Order) -> Self {
        Self {
            order_id: o.id,
            sale_id: o.sale_id,
            seq: o.seq,
            status: o.status,
            payable_amount: o.payable_amount,
            coupon_id: o.coupon_id,
            points_used: o.points_used,
        }
    }
}

/// What happened, with the fields clients read in `data`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Payload {
    CouponIssued {
        coupon_id: CouponId,
        seq: u32,
        valid_until: Timestamp,
    },
    ClaimFailed {
        reason: &'static str,
        message: String,
    },
    CouponUsed {
        coupon_id: CouponId,
        order_id: String,
        order_amount: i64,
        discount_amount: i64,
    },
    UseCancelled {
        coupon_id: CouponId,
        order_id: String,
    },
    ReservationExpired {
        coupon_id: CouponId,
        order_id: String,
        expired_at: Timestamp,
    },
    ExpiringSoon {
        coupon_id: CouponId,
        campaign_name: String,
        valid_until: Timestamp,
    },
    PaymentAfterExpiry {
        event_id: String,
        order_id: String,
        /// The coupons whose holds for the order had ended.
        coupon_ids: Vec<CouponId>,
        /// The points whose holds for the order had ended (0: none).
        #[serde(skip_serializing_if = "is_zero")]
        points: i64,
        /// The payable amount of a time-sale order that had ended unpaid
        /// (0: none).
        #[serde(skip_serializing_if = "is_zero")]
        order_amount: i64,
        /// How they ended: `expired`, or `released` (a failure or a
        /// cancellation came first).
        reason: &'static str,
    },
    OpeningSoon(Opening),
    Opened(Opening),
    SoldOut(StockNumbers),
    StockLow {
        threshold: i64,
        campaign_name: String,
        remaining_quantity: u32,
        total_quantity: u32,
    },
    CampaignUpdated {
        paused: bool,
        total_quantity: u32,
        remaining_quantity: u32,
    },
    PointsEarned {
        entry_id: uuid::Uuid,
        amount: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        expires_at: Option<Timestamp>,
    },
    PointsSpent {
        entry_id: uuid::Uuid,
        /// The points spent (positive).
        amount: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        order_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    OrderCreated(OrderNews),
    OrderPaid(OrderNews),
    OrderExpired(OrderNews),
    OrderCancelled(OrderNews),
    OrderRefunded(OrderNews),
    PointsExpiringSoon {
        amount: i64,
        expires_at: Timestamp,
    },
    SaleOpeningSoon(SaleOpening),
    SaleOpened(SaleOpening),
    SaleSoldOut(SaleSoldOut),
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// The payload of `campaign.opening_soon` and `campaign.opened`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Opening {
    pub campaign_name: String,
    pub issue_starts_at: Timestamp,
}

/// The payload of `sale.opening_soon` and `sale.opened`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SaleOpening {
    pub sale_id: SaleId,
    pub sale_name: String,
    pub starts_at: Timestamp,
}

/// The payload of `sale.sold_out`: every unit is taken by an order that is
/// pending or paid (an order that expires later gives its unit back).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SaleSoldOut {
    pub sale_id: SaleId,
    pub sale_name: String,
    pub total_quantity: u32,
    pub sold_count: u32,
}

/// The payload of `campaign.sold_out`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StockNumbers {
    pub campaign_name: String,
    pub total_quantity: u32,
    pub issued_count: u32,
    pub remaining_quantity: u32,
}

impl Payload {
    pub fn kind(&self) -> EventKind {
        match self {
            Payload::CouponIssued { .. } => EventKind::CouponIssued,
            Payload::ClaimFailed { .. } => EventKind::ClaimFailed,
            Payload::CouponUsed { .. } => EventKind::CouponUsed,
            Payload::UseCancelled { .. } => EventKind::UseCancelled,
            Payload::ReservationExpired { .. } => EventKind::ReservationExpired,
            Payload::ExpiringSoon { .. } => EventKind::ExpiringSoon,
            Payload::PaymentAfterExpiry { .. } => EventKind::PaymentAfterExpiry,
            Payload::OpeningSoon(_) => EventKind::OpeningSoon,
            Payload::Opened(_) => EventKind::Opened,
            Payload::SoldOut(_) => EventKind::SoldOut,
            Payload::StockLow { .. } => EventKind::StockLow,
            Payload::CampaignUpdated { .. } => EventKind::CampaignUpdated,
            Payload::PointsEarned { .. } => EventKind::PointsEarned,
            Payload::PointsSpent { .. } => EventKind::PointsSpent,
            Payload::PointsExpiringSoon { .. } => EventKind::PointsExpiringSoon,
            Payload::OrderCreated(_) => EventKind::OrderCreated,
            Payload::OrderPaid(_) => EventKind::OrderPaid,
            Payload::OrderExpired(_) => EventKind::OrderExpired,
            Payload::OrderCancelled(_) => EventKind::OrderCancelled,
            Payload::OrderRefunded(_) => EventKind::OrderRefunded,
            Payload::SaleOpeningSoon(_) => EventKind::SaleOpeningSoon,
            Payload::SaleOpened(_) => EventKind::SaleOpened,
            Payload::SaleSoldOut(_) => EventKind::SaleSoldOut,
        }
    }

    /// The `data` object clients receive.
    pub fn data(&self) -> serde_json::Value {
        // Plain fields of ids, numbers and strings: serialising cannot fail.
        serde_json::to_value(self).unwrap_or_default()
    }

    /// [`Payload::data`] as JSON text, without building a `Value` first
    /// (the group commit writes one per coupon).
    pub fn data_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Payload {
    /// The event of an order that just moved to `o.status` (a pending one
    /// was just created).
    pub fn of_order(o: &Order) -> Self {
        let news = OrderNews::of(o);
        match o.status {
            OrderStatus::PendingPayment => Payload::OrderCreated(news),
            OrderStatus::Paid => Payload::OrderPaid(news),
            OrderStatus::Expired => Payload::OrderExpired(news),
            OrderStatus::Cancelled => Payload::OrderCancelled(news),
            OrderStatus::Refunded => Payload::OrderRefunded(news),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_name_and_serde_agrees() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, serde_json::Value::from(kind.as_str()));
        }
        assert_eq!(EventKind::parse("coupon.nonsense"), None);
        assert_eq!(
            EventKind::webhook_names(),
            [
                "campaign.opened",
                "campaign.sold_out",
                "campaign.stock_low",
                "coupon.used",
                "coupon.use_cancelled",
                "payment.after_expiry",
                "sale.opened",
                "sale.sold_out"
            ]
        );
    }

    #[test]
    fn a_payload_names_its_kind_and_serialises_its_fields_as_data() {
        let p = Payload::UseCancelled {
            coupon_id: CouponId(uuid::Uuid::nil()),
            order_id: "o-1".into(),
        };
        assert_eq!(p.kind(), EventKind::UseCancelled);
        assert_eq!(
            p.data(),
            serde_json::json!({"coupon_id": "00000000-0000-0000-0000-000000000000", "order_id": "o-1"})
        );
    }
}
