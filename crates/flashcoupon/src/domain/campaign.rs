//! Campaigns: the terms of a drop, checked once when they arrive, and the
//! status a campaign shows at a given instant. (A third of the file is the
//! boundary tests of those rules.)

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::InvalidInput;
use super::discount::{Discount, MAX_MONEY};
use super::ids::CampaignId;
use super::timestamp::{self, MILLIS_PER_DAY, Timestamp};
use super::whole;

pub const MAX_TOTAL_QUANTITY: u32 = 1_000_000_000;
pub const MAX_PER_USER_LIMIT: u32 = 1_000;
pub const MAX_VALID_DAYS: u32 = 3_650;

/// How long an issued coupon can be spent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// For this many days from the moment of issue.
    Days(u32),
    /// From `from` (or the moment of issue, whichever is later) until a fixed end.
    Window {
        from: Option<Timestamp>,
        until: Timestamp,
    },
}

impl Validity {
    /// `[valid_from, valid_until)` of a coupon issued at `issued_at`.
    pub fn for_issue(&self, issued_at: Timestamp) -> (Timestamp, Timestamp) {
        match *self {
            Validity::Days(days) => (
                issued_at,
                issued_at.plus_millis(days as i64 * MILLIS_PER_DAY),
            ),
            Validity::Window { from, until } => {
                (from.map_or(issued_at, |f| f.max(issued_at)), until)
            }
        }
    }
}

/// The immutable terms every coupon of a campaign carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CouponTerms {
    pub discount: Discount,
    pub min_order_amount: i64,
    pub validity: Validity,
}

/// A campaign as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Campaign {
    pub id: CampaignId,
    pub name: String,
    pub terms: CouponTerms,
    pub total_quantity: u32,
    pub per_user_limit: u32,
    pub issue_starts_at: Timestamp,
    pub issue_ends_at: Timestamp,
    pub paused: bool,
    pub created_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    Upcoming,
    Open,
    SoldOut,
    Ended,
    Paused,
}

/// What a campaign shows at `now`. An ended campaign is `ended` even if it was
/// paused or sold out: nothing can change that any more.
pub fn campaign_status(
    now: Timestamp,
    starts: Timestamp,
    ends: Timestamp,
    paused: bool,
    remaining: u32,
) -> CampaignStatus {
    if now >= ends {
        CampaignStatus::Ended
    } else if paused {
        CampaignStatus::Paused
    } else if now < starts {
        CampaignStatus::Upcoming
    } else if remaining == 0 {
        CampaignStatus::SoldOut
    } else {
        CampaignStatus::Open
    }
}

/// The body of `POST /api/v1/campaigns`. Beyond each field's own rule:
/// `issue_ends_at` after `issue_starts_at`; exactly one of `valid_days` and
/// `valid_until`; `valid_until` not before `issue_ends_at`; `valid_from`
/// (only with `valid_until`) before `valid_until`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// 1 to 200 characters, not all of them white space (the ends are
    /// trimmed), and no control characters (SQLite's `length` stops at a NUL,
    /// PostgreSQL refuses one).
    // The pattern: no control character anywhere, and some character that
    // `char::is_whitespace` (what `trim` removes) is false for.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    pub discount: Discount,
    #[serde(default, deserialize_with = "whole::number")]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub min_order_amount: i64,
    #[serde(deserialize_with = "whole::number")]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub total_quantity: i64,
    #[serde(default = "one", deserialize_with = "whole::number")]
    #[schema(minimum = 1, maximum = 1_000)]
    pub per_user_limit: i64,
    #[serde(deserialize_with = "timestamp::client")]
    #[schema(schema_with = timestamp::client_schema)]
    pub issue_starts_at: Timestamp,
    #[serde(deserialize_with = "timestamp::client")]
    #[schema(schema_with = timestamp::client_schema)]
    pub issue_ends_at: Timestamp,
    /// Coupons stay valid this many days from their issue (1 to 3,650).
    #[serde(default, deserialize_with = "whole::optional")]
    #[schema(minimum = 1, maximum = 3_650)]
    pub valid_days: Option<i64>,
    /// Optional: coupons cannot be spent before this instant.
    #[serde(default, deserialize_with = "timestamp::client_optional")]
    #[schema(schema_with = timestamp::client_schema_nullable)]
    pub valid_from: Option<Timestamp>,
    #[serde(default, deserialize_with = "timestamp::client_optional")]
    #[schema(schema_with = timestamp::client_schema_nullable)]
    pub valid_until: Option<Timestamp>,
}

fn one() -> i64 {
    1
}

impl NewCampaign {
    /// Check every rule and build the campaign it describes.
    pub fn parse(self, id: CampaignId, now: Timestamp) -> Result<Campaign, InvalidInput> {
        let name = self.name.trim().to_owned();
        if name.is_empty()
            || self.name.chars().count() > 200
            || self.name.chars().any(char::is_control)
        {
            return Err(InvalidInput::new(
                "name",
                "must be 1 to 200 characters, not only white space, without control characters",
            ));
        }
        self.discount.validate()?;
        if !(0..=MAX_MONEY).contains(&self.min_order_amount) {
            return Err(InvalidInput::new(
                "min_order_amount",
                format!("must be between 0 and {MAX_MONEY}"),
            ));
        }
        let total_quantity = in_range("total_quantity", self.total_quantity, MAX_TOTAL_QUANTITY)?;
        let per_user_limit = in_range("per_user_limit", self.per_user_limit, MAX_PER_USER_LIMIT)?;
        if self.issue_ends_at <= self.issue_starts_at {
            return Err(InvalidInput::new(
                "issue_ends_at",
                "must be after issue_starts_at",
            ));
        }
        let validity = match (self.valid_days, self.valid_until) {
            (Some(days), None) => {
                if self.valid_from.is_some() {
                    return Err(InvalidInput::new(
                        "valid_from",
                        "only combines with valid_until, not with valid_days",
                    ));
                }
                Validity::Days(in_range("valid_days", days, MAX_VALID_DAYS)?)
            }
            (None, Some(until)) => {
                check_valid_until(until, self.issue_ends_at)?;
                if let Some(from) = self.valid_from
                    && from >= until
                {
                    return Err(InvalidInput::new(
                        "valid_from",
                        "must be before valid_until",
                    ));
                }
                Validity::Window {
                    from: self.valid_from,
                    until,
                }
            }
            _ => {
                return Err(InvalidInput::new(
                    "valid_days",
                    "give exactly one of valid_days or valid_until",
                ));
            }
        };
        Ok(Campaign {
            id,
            name,
            terms: CouponTerms {
                discount: self.discount,
                min_order_amount: self.min_order_amount,
                validity,
            },
            total_quantity,
            per_user_limit,
            issue_starts_at: self.issue_starts_at,
            issue_ends_at: self.issue_ends_at,
            paused: false,
            created_at: now,
        })
    }
}

/// A fixed validity end must outlast issuing, or late claims would be born expired.
pub fn check_valid_until(until: Timestamp, issue_ends_at: Timestamp) -> Result<(), InvalidInput> {
    if until < issue_ends_at {
        return Err(InvalidInput::new(
            "valid_until",
            "must not be before issue_ends_at (coupons issued late would be born expired)",
        ));
    }
    Ok(())
}

fn in_range(field: &'static str, value: i64, max: u32) -> Result<u32, InvalidInput> {
    if (1..=max as i64).contains(&value) {
        Ok(value as u32)
    } else {
        Err(InvalidInput::new(
            field,
            format!("must be between 1 and {max}"),
        ))
    }
}

/// The body of `PATCH /api/v1/campaigns/{id}`: every field optional, at
/// least one given. `issue_ends_at` must fall after the campaign's
/// `issue_starts_at`, and not after its coupons' `valid_until` if they have one.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignPatch {
    pub paused: Option<bool>,
    #[serde(default, deserialize_with = "timestamp::client_optional")]
    #[schema(schema_with = timestamp::client_schema_nullable)]
    pub issue_ends_at: Option<Timestamp>,
    #[serde(default, deserialize_with = "whole::optional")]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub total_quantity: Option<i64>,
}

impl CampaignPatch {
    /// Check the patch against the campaign as it stands. The stock rule
    /// (never below what was issued) needs the gate and is checked there.
    pub fn validate(&self, campaign: &Campaign) -> Result<Option<u32>, InvalidInput> {
        if self.paused.is_none() && self.issue_ends_at.is_none() && self.total_quantity.is_none() {
            return Err(InvalidInput::new(
                "paused",
                "give at least one of paused, issue_ends_at, total_quantity",
            ));
        }
        if let Some(ends) = self.issue_ends_at {
            if ends <= campaign.issue_starts_at {
                return Err(InvalidInput::new(
                    "issue_ends_at",
                    "must be after issue_starts_at",
                ));
            }
            if let Validity::Window { until, .. } = campaign.terms.validity {
                check_valid_until(until, ends).map_err(|_| {
                    InvalidInput::new(
                        "issue_ends_at",
                        "must not be after the coupons' valid_until",
                    )
                })?;
            }
        }
        self.total_quantity
            .map(|q| in_range("total_quantity", q, MAX_TOTAL_QUANTITY))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn sample() -> NewCampaign {
        NewCampaign {
            name: "Black Friday".into(),
            discount: Discount::Fixed { amount: 5_000 },
            min_order_amount: 30_000,
            total_quantity: 1_000,
            per_user_limit: 1,
            issue_starts_at: ts("2026-11-27T11:00:00Z"),
            issue_ends_at: ts("2026-11-27T12:00:00Z"),
            valid_days: Some(30),
            valid_from: None,
            valid_until: None,
        }
    }

    fn field_of(c: NewCampaign) -> &'static str {
        c.parse(CampaignId::generate(), Timestamp(0))
            .unwrap_err()
            .field
    }

    #[test]
    fn a_sensible_campaign_parses() {
        let c = sample()
            .parse(CampaignId::generate(), Timestamp(0))
            .unwrap();
        assert_eq!(c.terms.validity, Validity::Days(30));
        assert!(!c.paused);
    }

    #[test]
    fn absurd_numbers_are_rejected_by_field() {
        assert_eq!(
            field_of(NewCampaign {
                total_quantity: 0,
                ..sample()
            }),
            "total_quantity"
        );
        assert_eq!(
            field_of(NewCampaign {
                total_quantity: 1_000_000_001,
                ..sample()
            }),
            "total_quantity"
        );
        assert_eq!(
            field_of(NewCampaign {
                per_user_limit: 0,
                ..sample()
            }),
            "per_user_limit"
        );
        assert_eq!(
            field_of(NewCampaign {
                min_order_amount: -1,
                ..sample()
            }),
            "min_order_amount"
        );
        assert_eq!(
            field_of(NewCampaign {
                valid_days: Some(0),
                ..sample()
            }),
            "valid_days"
        );
        assert_eq!(
            field_of(NewCampaign {
                name: "  ".into(),
                ..sample()
            }),
            "name"
        );
    }

    #[test]
    fn the_window_must_be_forward_and_validity_exactly_one() {
        let end_before_start = NewCampaign {
            issue_ends_at: ts("2026-11-27T10:00:00Z"),
            ..sample()
        };
        assert_eq!(field_of(end_before_start), "issue_ends_at");
        let both = NewCampaign {
            valid_until: Some(ts("2026-12-31T00:00:00Z")),
            ..sample()
        };
        assert_eq!(field_of(both), "valid_days");
        let neither = NewCampaign {
            valid_days: None,
            ..sample()
        };
        assert_eq!(field_of(neither), "valid_days");
        let born_expired = NewCampaign {
            valid_days: None,
            valid_until: Some(ts("2026-11-27T11:30:00Z")),
            ..sample()
        };
        assert_eq!(field_of(born_expired), "valid_until");
    }

    #[test]
    fn validity_by_days_counts_from_the_moment_of_issue() {
        let issued = ts("2026-11-27T11:00:00Z");
        let (from, until) = Validity::Days(30).for_issue(issued);
        assert_eq!(from, issued);
        assert_eq!(until, ts("2026-12-27T11:00:00Z"));
    }

    #[test]
    fn a_fixed_window_starts_no_earlier_than_the_issue() {
        let w = Validity::Window {
            from: Some(ts("2026-12-01T00:00:00Z")),
            until: ts("2026-12-31T00:00:00Z"),
        };
        let (from, _) = w.for_issue(ts("2026-11-27T11:00:00Z"));
        assert_eq!(from, ts("2026-12-01T00:00:00Z"));
        let (from, _) = w.for_issue(ts("2026-12-05T00:00:00Z"));
        assert_eq!(from, ts("2026-12-05T00:00:00Z"));
    }

    #[test]
    fn status_follows_the_clock_pause_and_stock() {
        let (s, e) = (Timestamp(100), Timestamp(200));
        assert_eq!(
            campaign_status(Timestamp(99), s, e, false, 5),
            CampaignStatus::Upcoming
        );
        assert_eq!(
            campaign_status(Timestamp(100), s, e, false, 5),
            CampaignStatus::Open
        );
        assert_eq!(
            campaign_status(Timestamp(150), s, e, false, 0),
            CampaignStatus::SoldOut
        );
        assert_eq!(
            campaign_status(Timestamp(150), s, e, true, 5),
            CampaignStatus::Paused
        );
        assert_eq!(
            campaign_status(Timestamp(200), s, e, true, 0),
            CampaignStatus::Ended
        );
    }
}
