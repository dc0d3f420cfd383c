//! Keyset pages, as every list endpoint reads them: `limit` within bounds,
//! `before` the last id of the previous page, `next` present only when the
//! page came back full.

use crate::domain::InvalidInput;
use crate::domain::campaign::MAX_TOTAL_QUANTITY;
use crate::domain::ids::{CampaignId, CouponId, OrderId, parse_uuid};

/// A cursor exactly as a list writes it in `next`, and no other spelling:
/// a hyphenated id, or a `seq` up to the largest stock (the `before` and
/// `after` parameters' patterns say the same).
pub trait Cursor: Sized {
    fn parse(raw: &str) -> Option<Self>;
}

impl Cursor for uuid::Uuid {
    fn parse(raw: &str) -> Option<Self> {
        parse_uuid(raw)
    }
}

impl Cursor for CampaignId {
    fn parse(raw: &str) -> Option<Self> {
        raw.parse().ok()
    }
}

impl Cursor for CouponId {
    fn parse(raw: &str) -> Option<Self> {
        raw.parse().ok()
    }
}

impl Cursor for OrderId {
    fn parse(raw: &str) -> Option<Self> {
        raw.parse().ok()
    }
}

/// `^([0-9]{1,9}|1000000000)$`: nine digits, or the last seq of the largest stock.
impl Cursor for u32 {
    fn parse(raw: &str) -> Option<Self> {
        let digits = (1..=9).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_digit());
        if digits || raw == MAX_TOTAL_QUANTITY.to_string() {
            raw.parse().ok()
        } else {
            None
        }
    }
}

/// A validated page request.
#[derive(Debug)]
pub struct Page<T> {
    pub limit: u32,
    pub before: Option<T>,
}

impl<T: Cursor> Page<T> {
    /// `limit` defaults to `default` and must be in `1..=max`; `before` must
    /// parse as the listed thing's id (`what` names it in the error).
    pub fn parse(
        limit: Option<u32>,
        before: Option<String>,
        default: u32,
        max: u32,
        what: &str,
    ) -> Result<Self, InvalidInput> {
        Self::parse_cursor(limit, before, "before", default, max, what)
    }

    /// As [`Page::parse`], for a cursor parameter named `field`.
    pub fn parse_cursor(
        limit: Option<u32>,
        before: Option<String>,
        field: &'static str,
        default: u32,
        max: u32,
        what: &str,
    ) -> Result<Self, InvalidInput> {
        let limit = limit.unwrap_or(default);
        if !(1..=max).contains(&limit) {
            return Err(InvalidInput::new(
                "limit",
                format!("must be between 1 and {max}"),
            ));
        }
        let before = before
            .map(|b| {
                T::parse(&b).ok_or_else(|| InvalidInput::new(field, format!("must be a {what}")))
            })
            .transpose()?;
        Ok(Self { limit, before })
    }

    /// The cursor of the page after `rows`: the last id, if the page is full.
    pub fn next<R, I>(&self, rows: &[R], id: impl Fn(&R) -> I) -> Option<I> {
        (rows.len() == self.limit as usize)
            .then(|| rows.last().map(id))
            .flatten()
    }
}
