//! Keyset pages, as every list endpoint reads them: `limit` within bounds,
//! `before` the last id of the previous page, `next` present only when the
//! page came back full.

use std::str::FromStr;

use crate::domain::InvalidInput;

/// A validated page request.
#[derive(Debug)]
pub struct Page<T> {
    pub limit: u32,
    pub before: Option<T>,
}

impl<T: FromStr> Page<T> {
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
                b.parse::<T>()
                    .map_err(|_| InvalidInput::new(field, format!("must be a {what}")))
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
