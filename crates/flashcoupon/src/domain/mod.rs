//! The domain: pure types and decisions. Nothing here does I/O; every rule
//! that depends on the time takes `now` as an argument, so it can be tested
//! at its boundaries without a clock.

pub mod account;
pub mod campaign;
pub mod code;
pub mod coupon;
pub mod discount;
pub mod ids;
pub mod timestamp;
pub mod whole;

/// A request value that broke a rule. `field` is the offending field, named
/// in the message because API.md promises clients they can tell which one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidInput {
    pub field: &'static str,
    pub message: String,
}

impl InvalidInput {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}
