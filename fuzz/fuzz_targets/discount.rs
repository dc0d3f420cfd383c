//! Discounts: whatever the rule and the order, a valid discount is between
//! 0 and the order, never above a fixed amount or a percent's cap, and the
//! JSON the API accepts for it round-trips.
#![no_main]

use arbitrary::Arbitrary;
use flashcoupon::domain::discount::{Discount, MAX_MONEY};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Case {
    percent: bool,
    amount: i64,
    cap: Option<i64>,
    order: i64,
}

fuzz_target!(|c: Case| {
    let d = if c.percent {
        Discount::Percent {
            percent: c.amount,
            max_amount: c.cap,
        }
    } else {
        Discount::Fixed { amount: c.amount }
    };
    if d.validate().is_err() || !(0..=MAX_MONEY).contains(&c.order) {
        return;
    }
    let off = d.amount_for(c.order);
    assert!((0..=c.order).contains(&off), "{d:?} on {} gave {off}", c.order);
    match d {
        Discount::Fixed { amount } => assert_eq!(off, amount.min(c.order)),
        Discount::Percent {
            percent,
            max_amount,
        } => {
            assert!(off <= max_amount.unwrap_or(i64::MAX));
            // Rounded down: never more than the exact share.
            assert!(off as i128 * 100 <= c.order as i128 * percent as i128);
        }
    }
    let json = serde_json::to_string(&d).expect("serialises");
    let back: Discount = serde_json::from_str(&json).expect("round-trips");
    assert_eq!(back, d);
});
