//! `flashcoupon loadtest --scenario time-sale`: a time sale against running
//! servers, its promises verified from the outside.
//!
//! 1. set-up through the API ([`setup`]): shoppers, a check that every
//!    target runs with `--test-payments`, points and coupons for the buyers
//!    who use them, and the sale, opening a few seconds ahead;
//! 2. the storm, open loop ([`storm`]): buyers order at their planned
//!    instant, payers pay at once, the others never do, so their units come
//!    back after the payment time; buyers who found no unit retry after it;
//!    the sale's stock is read every 50 ms throughout;
//! 3. once every unpaid order has run out, every buyer's orders (and points
//!    and coupon) are read back and checked ([`verify`]);
//! 4. the report ([`report`]), JSON and HTML like the drop's.

mod plan;
mod report;
mod run;
mod setup;
mod storm;
mod timeline;
mod verify;
mod violation;

pub use report::SaleReport;
pub use run::run;
pub use verify::{SaleViolation, Tally};
