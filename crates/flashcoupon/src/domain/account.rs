//! Accounts: e-mail and password rules, and roles.

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

/// A normalised (trimmed, lower-case) e-mail address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let email = raw.trim().to_lowercase();
        let bad =
            || InvalidInput::new("email", "must be an e-mail address such as kim@example.com");
        if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = email.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(bad());
        }
        Ok(Self(email))
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
            Email::parse(" Kim@Example.COM ").unwrap().as_str(),
            "kim@example.com"
        );
        for bad in [
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
    }

    #[test]
    fn passwords_need_eight_characters() {
        assert!(Password::parse("1234567".into()).is_err());
        assert!(Password::parse("12345678".into()).is_ok());
        // Counted in characters, not bytes.
        assert!(Password::parse("비밀번호비밀번호".into()).is_ok());
    }
}
