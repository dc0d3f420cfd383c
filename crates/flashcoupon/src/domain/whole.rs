//! Whole numbers as JSON writes them. JSON has one number type, and JSON
//! Schema's `integer` is any number without a fractional part, so `5000`,
//! `5000.0` and `5e3` are the same amount: each integer field of a request
//! accepts all three (`#[serde(deserialize_with = "whole::number")]`), and
//! `1.5` is a 400 naming the field, as before. What a client's JSON library
//! writes for a whole amount is not the client's choice.

use std::fmt;

use serde::Deserializer;
use serde::de::{Error, Unexpected, Visitor};

/// 2^63: the first whole `f64` beyond `i64`.
const I64_END: f64 = 9_223_372_036_854_775_808.0;

/// A whole number that fits `i64`, however it is written.
pub fn number<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_any(Whole)
}

/// As [`number`], for an optional field: `null` or absent is `None`.
pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_option(Optional)
}

struct Whole;

impl Visitor<'_> for Whole {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number")
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<i64, E> {
        if v.fract() == 0.0 && (-I64_END..I64_END).contains(&v) {
            Ok(v as i64)
        } else {
            Err(E::invalid_value(Unexpected::Float(v), &self))
        }
    }
}

struct Optional;

impl<'de> Visitor<'de> for Optional {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number or null")
    }

    fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        number(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::number")]
        n: i64,
        #[serde(default, deserialize_with = "super::optional")]
        m: Option<i64>,
    }

    fn n(json: &str) -> Result<i64, String> {
        serde_json::from_str::<Body>(json)
            .map(|b| b.n)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_are_accepted_however_they_are_written() {
        assert_eq!(n(r#"{"n": 5000}"#), Ok(5000));
        assert_eq!(n(r#"{"n": 5000.0}"#), Ok(5000));
        assert_eq!(n(r#"{"n": 5e3}"#), Ok(5000));
        assert_eq!(n(r#"{"n": -0.0}"#), Ok(0));
        assert_eq!(n(r#"{"n": -7}"#), Ok(-7));
        assert_eq!(n(r#"{"n": 9223372036854775807}"#), Ok(i64::MAX));
    }

    #[test]
    fn fractions_and_numbers_beyond_i64_are_refused() {
        for bad in [
            r#"{"n": 1.5}"#,
            r#"{"n": 9223372036854775808}"#,
            r#"{"n": 1e19}"#,
            r#"{"n": -1e19}"#,
            r#"{"n": "5"}"#,
            r#"{"n": null}"#,
        ] {
            assert!(n(bad).is_err(), "{bad} should be refused");
        }
        assert!(n(r#"{"n": 1.5}"#).unwrap_err().contains("a whole number"));
    }

    #[test]
    fn an_optional_one_may_be_null_or_absent() {
        let m = |json: &str| serde_json::from_str::<Body>(json).map(|b| b.m).ok();
        assert_eq!(m(r#"{"n": 1}"#), Some(None));
        assert_eq!(m(r#"{"n": 1, "m": null}"#), Some(None));
        assert_eq!(m(r#"{"n": 1, "m": 2.0}"#), Some(Some(2)));
        assert_eq!(m(r#"{"n": 1, "m": 2.5}"#), None);
    }
}
