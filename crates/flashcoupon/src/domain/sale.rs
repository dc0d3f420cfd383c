//! Time sales (타임세일): a product's limited stock at a sale price, sold
//! first come first served in a window; orders, one unit each, and the
//! states an order moves through. Checked once when they arrive.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::campaign::{MAX_PER_USER_LIMIT, MAX_TOTAL_QUANTITY, in_range};
use super::discount::MAX_MONEY;
use super::ids::{CouponId, OrderId, SaleId, UserId};
use super::timestamp::{self, Timestamp};
use super::{InvalidInput, display_name, whole};

/// How long an order waits for its payment by default, and at most.
pub const DEFAULT_PAYMENT_TTL_SECS: u32 = 600;
pub const MAX_PAYMENT_TTL_SECS: u32 = 86_400;

/// What is on sale.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// The shop's stock-keeping unit: 1 to 64 characters.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub sku: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    /// The usual price (KRW), 1 to 10¹².
    #[serde(deserialize_with = "whole::number")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    pub list_price: i64,
}

/// A sale as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sale {
    pub id: SaleId,
    pub name: String,
    pub product: Product,
    pub sale_price: i64,
    pub total_quantity: u32,
    pub per_user_limit: u32,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub payment_ttl_secs: u32,
    pub paused: bool,
    pub created_at: Timestamp,
}

/// The body of `POST /api/v1/sales`. Beyond each field's own rule:
/// `ends_at` after `starts_at`, `sale_price` not above the list price.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSale {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    pub product: Product,
    /// What one unit costs in the sale (KRW), 0 to the list price.
    #[serde(deserialize_with = "whole::number")]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub sale_price: i64,
    #[serde(deserialize_with = "whole::number")]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub total_quantity: i64,
    /// Orders per buyer that are pending or paid at once (default 1).
    #[serde(default = "one", deserialize_with = "whole::number")]
    #[schema(minimum = 1, maximum = 1_000)]
    pub per_user_limit: i64,
    #[serde(deserialize_with = "timestamp::client")]
    #[schema(schema_with = timestamp::client_schema)]
    pub starts_at: Timestamp,
    #[serde(deserialize_with = "timestamp::client")]
    #[schema(schema_with = timestamp::client_schema)]
    pub ends_at: Timestamp,
    /// Seconds an order waits for its payment before it expires and its
    /// unit goes back on sale: 1 to 86,400, default 600.
    #[serde(default, deserialize_with = "whole::optional")]
    #[schema(minimum = 1, maximum = 86_400)]
    pub payment_ttl_secs: Option<i64>,
}

fn one() -> i64 {
    1
}

impl NewSale {
    /// Check every rule and build the sale it describes.
    pub fn parse(self, id: SaleId, now: Timestamp) -> Result<Sale, InvalidInput> {
        let name = display_name("name", &self.name, 200)?;
        let product = Product {
            sku: display_name("product.sku", &self.product.sku, 64)?,
            name: display_name("product.name", &self.product.name, 200)?,
            list_price: self.product.list_price,
        };
        if !(1..=MAX_MONEY).contains(&product.list_price) {
            return Err(InvalidInput::new(
                "product.list_price",
                format!("must be between 1 and {MAX_MONEY}"),
            ));
        }
        if !(0..=product.list_price).contains(&self.sale_price) {
            return Err(InvalidInput::new(
                "sale_price",
                "must be between 0 and the product's list_price",
            ));
        }
        let total_quantity = in_range("total_quantity", self.total_quantity, MAX_TOTAL_QUANTITY)?;
        let per_user_limit = in_range("per_user_limit", self.per_user_limit, MAX_PER_USER_LIMIT)?;
        if self.ends_at <= self.starts_at {
            return Err(InvalidInput::new("ends_at", "must be after starts_at"));
        }
        let payment_ttl_secs = match self.payment_ttl_secs {
            None => DEFAULT_PAYMENT_TTL_SECS,
            Some(ttl) => in_range("payment_ttl_secs", ttl, MAX_PAYMENT_TTL_SECS)?,
        };
        Ok(Sale {
            id,
            name,
            product,
            sale_price: self.sale_price,
            total_quantity,
            per_user_limit,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            payment_ttl_secs,
            paused: false,
            created_at: now,
        })
    }
}

/// The body of `PATCH /api/v1/sales/{id}`: every field optional, at least
/// one given. The stock never goes below a unit an order holds (checked by
/// the gate and the record).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SalePatch {
    pub paused: Option<bool>,
    #[serde(default, deserialize_with = "timestamp::client_optional")]
    #[schema(schema_with = timestamp::client_schema_nullable)]
    pub ends_at: Option<Timestamp>,
    #[serde(default, deserialize_with = "whole::optional")]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub total_quantity: Option<i64>,
}

impl SalePatch {
    /// Check the patch against the sale as it stands; the new stock, if any.
    pub fn validate(&self, sale: &Sale) -> Result<Option<u32>, InvalidInput> {
        if self.paused.is_none() && self.ends_at.is_none() && self.total_quantity.is_none() {
            return Err(InvalidInput::new(
                "paused",
                "give at least one of paused, ends_at, total_quantity",
            ));
        }
        if let Some(ends) = self.ends_at
            && ends <= sale.starts_at
        {
            return Err(InvalidInput::new("ends_at", "must be after starts_at"));
        }
        self.total_quantity
            .map(|q| in_range("total_quantity", q, MAX_TOTAL_QUANTITY))
            .transpose()
    }
}

/// Where an order is. `pending_payment` leaves once: to `paid` (its
/// payment), `expired` (not paid in time) or `cancelled` (by its buyer or a
/// failed payment); a paid order may be `refunded`. Expired and cancelled
/// orders gave their unit back to the stock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    PendingPayment,
    Paid,
    Expired,
    Cancelled,
    Refunded,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::PendingPayment => "pending_payment",
            OrderStatus::Paid => "paid",
            OrderStatus::Expired => "expired",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            OrderStatus::PendingPayment,
            OrderStatus::Paid,
            OrderStatus::Expired,
            OrderStatus::Cancelled,
            OrderStatus::Refunded,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }

    /// Does an order in this state hold its unit (and its buyer's slot)?
    pub fn holds_unit(self) -> bool {
        matches!(
            self,
            OrderStatus::PendingPayment | OrderStatus::Paid | OrderStatus::Refunded
        )
    }
}

/// An order as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub sale_id: SaleId,
    pub user_id: UserId,
    /// Its rank 1..total among the units that orders hold.
    pub seq: u32,
    pub user_seq: u32,
    pub idempotency_key: Option<String>,
    pub unit_price: i64,
    pub coupon_id: Option<CouponId>,
    pub coupon_discount: i64,
    pub points_used: i64,
    pub payable_amount: i64,
    pub status: OrderStatus,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub refunded_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NewSale {
        NewSale {
            name: " Air fryer at half price ".into(),
            product: Product {
                sku: "AF-100".into(),
                name: "Air fryer".into(),
                list_price: 100_000,
            },
            sale_price: 50_000,
            total_quantity: 100,
            per_user_limit: 1,
            starts_at: Timestamp(1_000),
            ends_at: Timestamp(2_000),
            payment_ttl_secs: None,
        }
    }

    #[test]
    fn a_sale_is_checked_field_by_field() {
        let id = SaleId::generate();
        let sale = sample().parse(id, Timestamp(5)).unwrap();
        assert_eq!(sale.name, "Air fryer at half price");
        assert_eq!(sale.payment_ttl_secs, DEFAULT_PAYMENT_TTL_SECS);
        let bad = |f: fn(&mut NewSale), field: &str| {
            let mut s = sample();
            f(&mut s);
            assert_eq!(s.parse(id, Timestamp(5)).unwrap_err().field, field);
        };
        bad(|s| s.sale_price = 100_001, "sale_price");
        bad(|s| s.sale_price = -1, "sale_price");
        bad(|s| s.product.list_price = 0, "product.list_price");
        bad(|s| s.product.sku = " ".into(), "product.sku");
        bad(|s| s.product.name = "a\u{0}".into(), "product.name");
        bad(|s| s.total_quantity = 0, "total_quantity");
        bad(|s| s.per_user_limit = 1_001, "per_user_limit");
        bad(|s| s.ends_at = Timestamp(1_000), "ends_at");
        bad(|s| s.payment_ttl_secs = Some(0), "payment_ttl_secs");
        bad(|s| s.payment_ttl_secs = Some(86_401), "payment_ttl_secs");
        let mut ok = sample();
        ok.sale_price = 0;
        ok.payment_ttl_secs = Some(86_400);
        assert!(ok.parse(id, Timestamp(5)).is_ok());
    }

    #[test]
    fn a_patch_needs_a_field_and_keeps_the_window() {
        let sale = sample().parse(SaleId::generate(), Timestamp(5)).unwrap();
        assert_eq!(
            SalePatch::default().validate(&sale).unwrap_err().field,
            "paused"
        );
        let early = SalePatch {
            ends_at: Some(Timestamp(1_000)),
            ..Default::default()
        };
        assert_eq!(early.validate(&sale).unwrap_err().field, "ends_at");
        let more = SalePatch {
            total_quantity: Some(150),
            ..Default::default()
        };
        assert_eq!(more.validate(&sale), Ok(Some(150)));
    }

    #[test]
    fn only_expired_and_cancelled_orders_give_their_unit_back() {
        for s in [
            "pending_payment",
            "paid",
            "expired",
            "cancelled",
            "refunded",
        ] {
            let status = OrderStatus::parse(s).unwrap();
            assert_eq!(status.as_str(), s);
            assert_eq!(status.holds_unit(), !matches!(s, "expired" | "cancelled"));
        }
        assert_eq!(OrderStatus::parse("paid "), None);
    }
}
