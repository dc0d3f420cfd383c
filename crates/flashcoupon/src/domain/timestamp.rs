//! Instants as milliseconds since the Unix epoch (UTC), RFC 3339 on the wire.
//! Milliseconds keep storage and comparisons integer-cheap on the hot path.
//!
//! Two readings of a time: [`Timestamp::parse_rfc3339`] takes any RFC 3339
//! time that can be written back (what the server itself wrote, e.g. an
//! event from another instance); a time a client sends goes through
//! [`Timestamp::parse_client`], whose rule the request schemas publish as
//! [`CLIENT_PATTERN`], so the document and the server agree on every string.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

pub const MILLIS_PER_DAY: i64 = 86_400_000;

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the instants RFC 3339 can
/// write in UTC.
const MIN_MS: i64 = -62_167_219_200_000;
const MAX_MS: i64 = 253_402_300_799_000;

/// What a client may write for a time: RFC 3339 with `T`, `Z` or a `±hh:mm`
/// offset, at most nine fractional digits, no leap second, and a year from
/// 2000 to 2999 as written (which keeps obviously absurd dates out, and
/// every instant within a day of those years, far from any overflow). The
/// calendar (no 30 February) is `format: date-time`'s part of the schema.
pub const CLIENT_PATTERN: &str = r"^2[0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";

static CLIENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(CLIENT_PATTERN).expect("CLIENT_PATTERN compiles"));

impl Timestamp {
    pub fn from_offset(dt: OffsetDateTime) -> Self {
        Self((dt.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    pub fn to_offset(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Any RFC 3339 time whose instant can be written back in UTC.
    pub fn parse_rfc3339(s: &str) -> Result<Self, String> {
        let dt = OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|e| format!("expected an RFC 3339 time such as 2026-11-27T11:00:00Z ({e})"))?;
        let ts = Self::from_offset(dt);
        if !(MIN_MS..=MAX_MS).contains(&ts.0) {
            return Err("time must lie between the years 0000 and 9999 in UTC".into());
        }
        Ok(ts)
    }

    /// A time a client sent: [`CLIENT_PATTERN`], on a day the calendar has.
    pub fn parse_client(s: &str) -> Result<Self, String> {
        if !CLIENT.is_match(s) {
            return Err(
                "expected an RFC 3339 time in the years 2000 to 2999, such as 2026-11-27T11:00:00Z \
                 or 2026-11-27T20:00:00.250+09:00"
                    .into(),
            );
        }
        Self::parse_rfc3339(s)
    }

    pub fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }
}

/// serde: a time a client sent (`deserialize_with = "timestamp::client"`).
pub fn client<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    Timestamp::parse_client(&s).map_err(serde::de::Error::custom)
}

/// As [`client`], for an optional field: `null` or absent is `None`.
pub fn client_optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    let s = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
    s.map(|s| Timestamp::parse_client(&s))
        .transpose()
        .map_err(serde::de::Error::custom)
}

/// The schema of a time a client sends (`schema_with = timestamp::client_schema`).
pub fn client_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .pattern(Some(CLIENT_PATTERN))
        .description(Some("RFC 3339, a year from 2000 to 2999 as written"))
        .build()
}

/// As [`client_schema`], for an optional field that may also be `null`.
pub fn client_schema_nullable() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    let mut schema = client_schema();
    schema.schema_type = SchemaType::from_iter([Type::String, Type::Null]);
    schema
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dt = self.to_offset();
        match dt.format(&Rfc3339) {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "{}ms", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("RFC 3339, UTC"))
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_rfc3339_in_utc() {
        let t = Timestamp::parse_rfc3339("2026-11-27T20:00:00.250+09:00").unwrap();
        assert_eq!(t.to_string(), "2026-11-27T11:00:00.25Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn rejects_garbage_and_absurd_years() {
        assert!(Timestamp::parse_rfc3339("tomorrow").is_err());
        assert!(Timestamp::parse_client("1969-01-01T00:00:00Z").is_err());
        assert!(Timestamp::parse_client("3000-01-01T00:00:00Z").is_err());
    }

    #[test]
    fn a_client_writes_exactly_what_the_schema_pattern_says() {
        for good in [
            "2000-01-01T00:00:00Z",
            "2999-12-31T23:59:59.123456789Z",
            "2024-02-29T12:00:00+09:00",
            "2026-11-27T11:00:00-23:59",
        ] {
            assert!(Timestamp::parse_client(good).is_ok(), "{good}");
        }
        for bad in [
            "2026-11-27t11:00:00Z",
            "2026-11-27 11:00:00Z",
            "2026-11-27X11:00:00Z",
            "2026-11-27T11:00:00z",
            "2026-11-27T11:00:60Z",
            "2026-11-27T11:00:00.1234567890Z",
            "2026-11-27T11:00:00+24:00",
            "2026-11-27T11:00:00",
            "2026-02-30T11:00:00Z",
            "2026-11-27T11:00:00Z\n",
        ] {
            assert!(Timestamp::parse_client(bad).is_err(), "{bad}");
        }
        // The year as written decides: this one is 1999 in UTC.
        let t = Timestamp::parse_client("2000-01-01T05:00:00+09:00").unwrap();
        assert_eq!(t.to_string(), "1999-12-31T20:00:00Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_string()), Ok(t));
    }
}
