//! Discount rules: how much a coupon takes off an order.
//!
//! Money is an integer in the currency's smallest unit (KRW: won). A fixed
//! discount never exceeds the order; a percent discount rounds down to the
//! unit and respects its optional cap.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::InvalidInput;
use super::whole;

/// The largest amount of money we accept anywhere (10^12 won): keeps
/// `amount * percent` far below `i64::MAX`.
pub const MAX_MONEY: i64 = 1_000_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Discount {
    /// A fixed amount off, e.g. 5,000 won.
    Fixed {
        #[serde(deserialize_with = "whole::number")]
        #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
        amount: i64,
    },
    /// A percentage off (1..=100), optionally capped at `max_amount`.
    Percent {
        #[serde(deserialize_with = "whole::number")]
        #[schema(minimum = 1, maximum = 100)]
        percent: i64,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "whole::optional"
        )]
        #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
        max_amount: Option<i64>,
    },
}

impl Discount {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        match *self {
            Discount::Fixed { amount } if !(1..=MAX_MONEY).contains(&amount) => {
                Err(InvalidInput::new(
                    "discount.amount",
                    format!("must be between 1 and {MAX_MONEY}"),
                ))
            }
            Discount::Percent { percent, .. } if !(1..=100).contains(&percent) => Err(
                InvalidInput::new("discount.percent", "must be between 1 and 100"),
            ),
            Discount::Percent {
                max_amount: Some(max),
                ..
            } if !(1..=MAX_MONEY).contains(&max) => Err(InvalidInput::new(
                "discount.max_amount",
                format!("must be between 1 and {MAX_MONEY}"),
            )),
            _ => Ok(()),
        }
    }

    /// The discount on an order of `order_amount` (0..=MAX_MONEY).
    pub fn amount_for(&self, order_amount: i64) -> i64 {
        let raw = match *self {
            Discount::Fixed { amount } => amount,
            Discount::Percent {
                percent,
                max_amount,
            } => {
                // Integer division rounds toward zero, i.e. down for non-negative values.
                let pct = order_amount * percent / 100;
                max_amount.map_or(pct, |cap| pct.min(cap))
            }
        };
        raw.clamp(0, order_amount)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_discount_never_exceeds_the_order() {
        let d = Discount::Fixed { amount: 5_000 };
        assert_eq!(d.amount_for(30_000), 5_000);
        assert_eq!(d.amount_for(5_000), 5_000);
        assert_eq!(d.amount_for(3_000), 3_000);
        assert_eq!(d.amount_for(0), 0);
    }

    #[test]
    fn a_percent_discount_rounds_down_to_the_unit() {
        let d = Discount::Percent {
            percent: 15,
            max_amount: None,
        };
        // 15% of 9,999 is 1,499.85: the customer gets 1,499.
        assert_eq!(d.amount_for(9_999), 1_499);
        assert_eq!(d.amount_for(1), 0);
        assert_eq!(d.amount_for(MAX_MONEY), MAX_MONEY / 100 * 15);
    }

    #[test]
    fn a_percent_discount_respects_its_cap_exactly() {
        let d = Discount::Percent {
            percent: 10,
            max_amount: Some(3_000),
        };
        assert_eq!(d.amount_for(29_990), 2_999);
        assert_eq!(d.amount_for(30_000), 3_000);
        assert_eq!(d.amount_for(1_000_000), 3_000);
    }

    #[test]
    fn one_hundred_percent_makes_the_order_free() {
        let d = Discount::Percent {
            percent: 100,
            max_amount: None,
        };
        assert_eq!(d.amount_for(12_345), 12_345);
    }

    #[test]
    fn out_of_range_values_name_their_field() {
        let bad = [
            (Discount::Fixed { amount: 0 }, "discount.amount"),
            (Discount::Fixed { amount: -1 }, "discount.amount"),
            (
                Discount::Percent {
                    percent: 0,
                    max_amount: None,
                },
                "discount.percent",
            ),
            (
                Discount::Percent {
                    percent: 101,
                    max_amount: None,
                },
                "discount.percent",
            ),
            (
                Discount::Percent {
                    percent: 5,
                    max_amount: Some(0),
                },
                "discount.max_amount",
            ),
        ];
        for (d, field) in bad {
            assert_eq!(d.validate().unwrap_err().field, field, "{d:?}");
        }
        assert!(
            Discount::Percent {
                percent: 100,
                max_amount: Some(1)
            }
            .validate()
            .is_ok()
        );
    }
}
