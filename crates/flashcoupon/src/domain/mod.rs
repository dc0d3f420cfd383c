//! The domain: pure types and decisions. Nothing here does I/O; every rule
//! that depends on the time takes `now` as an argument, so it can be tested
//! at its boundaries without a clock.

pub mod account;
pub mod campaign;
pub mod code;
pub mod coupon;
pub mod discount;
pub mod ids;
pub mod sale;
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

/// A name people read (a campaign's, a sale's, a product's): 1 to `max`
/// characters, not only white space (the ends are trimmed), and no control
/// characters (SQLite's `length` stops at a NUL, PostgreSQL refuses one).
pub fn display_name(field: &'static str, raw: &str, max: usize) -> Result<String, InvalidInput> {
    let name = raw.trim();
    if name.is_empty() || raw.chars().count() > max || raw.chars().any(char::is_control) {
        return Err(InvalidInput::new(
            field,
            format!(
                "must be 1 to {max} characters, not only white space, without control characters"
            ),
        ));
    }
    Ok(name.to_owned())
}
