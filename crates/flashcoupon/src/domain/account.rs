//! Accounts: e-mail and password rules, and roles.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::InvalidInput;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// White space and control characters, as a regex class body: exactly what
/// `char::is_whitespace` or `char::is_control` is true for.
macro_rules! blank {
    () => {
        r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    };
}

/// What an e-mail address may be, as the sign-up schema publishes it: a
/// local part, `@`, and a domain with a dot inside it; no second `@`, and
/// no white space or control character anywhere.
pub const EMAIL_PATTERN: &str = concat!(
    r"^[^@",
    blank!(),
    r"]+@[^@.",
    blank!(),
    r"][^@",
    blank!(),
    r"]*\.[^@",
    blank!(),
    r"]*[^@.",
    blank!(),
    r"]$"
);

/// At most this many characters.
pub const EMAIL_MAX_CHARS: usize = 254;

static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(EMAIL_PATTERN).expect("EMAIL_PATTERN compiles"));

/// A normalised (lower-case) e-mail address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// [`EMAIL_PATTERN`], at most [`EMAIL_MAX_CHARS`], taken as written
    /// (nothing trimmed: the schema and the server read the same string).
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if raw.chars().count() > EMAIL_MAX_CHARS || !EMAIL.is_match(raw) {
            return Err(InvalidInput::new(
                "email",
                "must be an e-mail address such as kim@example.com",
            ));
        }
        Ok(Self(raw.to_lowercase()))
    }

    /// The schema of an e-mail address (`schema_with = Email::schema`).
    pub fn schema() -> utoipa::openapi::schema::Object {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .max_length(Some(EMAIL_MAX_CHARS))
            .pattern(Some(EMAIL_PATTERN))
            .description(Some("An e-mail address (compared in lower case)."))
            .build()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password that meets the rules; never logged or echoed.
pub struct Password(String);

impl Password {
    pub fn parse(raw: String) -> Result<Self, InvalidInput> {
        let n = raw.chars().count();
        if !(8..=256).contains(&n) {
            return Err(InvalidInput::new("password", "must be 8 to 256 characters"));
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("Kim@Example.COM").unwrap().as_str(),
            "kim@example.com"
        );
        assert!(Email::parse("a..b@c..d").is_ok());
        assert!(Email::parse(&format!("{}@example.com", "k".repeat(242))).is_ok());
        for bad in [
            " kim@example.com",
            "kim@example.com\u{a0}",
            "kim\u{85}@example.com",
            "kim@exam\u{3000}ple.com",
            "kim@example.com\n",
            "kim@example.",
            "kim@.",
            "kim@a.",
            "",
            "kim",
            "@example.com",
            "kim@",
            "kim@example",
            "a b@c.d",
            "a@b@c.d",
            "kim@.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = format!("{}@example.com", "k".repeat(243));
        assert!(Email::parse(&long).is_err(), "255 characters");
    }

    #[test]
    fn passwords_need_eight_characters() {
        assert!(Password::parse("1234567".into()).is_err());
        assert!(Password::parse("12345678".into()).is_ok());
        // Counted in characters, not bytes.
        assert!(Password::parse("비밀번호비밀번호".into()).is_ok());
    }
}
