//! Issuing coupons: the claim (the hot path) and coupon campaigns as a kind
//! of stock of the admission core.

pub mod campaigns;
pub mod claim;
mod stock;

pub use stock::{COUPONS, CouponRows, CouponStock, drop_of, terms_of};
