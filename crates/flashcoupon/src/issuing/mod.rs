//! Issuing coupons: the claim (the hot path), codes (shared and unique, and
//! the jobs that make them), and coupon campaigns as a kind of stock of the
//! admission core.

pub mod campaigns;
pub mod claim;
pub mod codes;
mod stock;
pub mod triggers;

pub use stock::{COUPONS, CouponRows, CouponStock, drop_of, terms_of};
