//! Time sales (타임세일): a product's limited stock sold first come first
//! served through the same admission core as coupons (a sale is a drop of
//! kind `s`, an order one unit), then paid, or given back to the stock when
//! it expires or is cancelled.
//!
//! - `sales`: creating and changing sales (record and gate in step);
//! - `orders`: placing an order (gate, then group commit), paying,
//!   cancelling, the expiry round, and giving units back to the gate;
//! - `stock`: sales as a kind of stock of the admission core;
//! - `live`: live stock for Server-Sent Events, one poller per watched sale.

pub mod live;
pub mod orders;
pub mod sales;
mod stock;

pub use stock::{OrderRows, SALES, SaleStock, drop_of, held, terms_of};

use crate::admission::GateError;
use crate::domain::InvalidInput;
use crate::domain::sale::OrderStatus;
use crate::rate_limit::RetryAfter;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum SellError {
    #[error("no such sale")]
    NoSuchSale,
    #[error("no such order")]
    NoSuchOrder,
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// The stock would drop below a unit an order holds.
    #[error("total_quantity cannot go below seq {0}, which an order holds")]
    BelowSold(u32),
    #[error("too many orders; retry in {} s", .0.secs)]
    RateLimited(RetryAfter),
    /// Nothing was taken (or it went back): retry.
    #[error("{0}")]
    Unavailable(String),
    /// It was not paid within its payment time: its unit went back.
    #[error("the order expired before it was paid")]
    OrderExpired,
    #[error("the order is {}, not pending payment", .0.as_str())]
    NotPending(OrderStatus),
    #[error("no such coupon")]
    NoSuchCoupon,
    /// The chosen coupon cannot pay for this order.
    #[error("the coupon cannot be used: {0:?}")]
    Coupon(crate::domain::coupon::UseRejection),
    #[error("the balance does not cover {0} points")]
    InsufficientPoints(i64),
    #[error(
        "test payments are off: orders are paid by the shop's payment events (start with --test-payments for demos)"
    )]
    TestPaymentsOff,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("sale write task failed: {0}")]
    Task(String),
}

impl From<GateError> for SellError {
    fn from(e: GateError) -> Self {
        match e {
            GateError::NoSuchDrop => SellError::NoSuchSale,
            GateError::Unavailable(why) => SellError::Unavailable(why),
        }
    }
}
