//! Opaque ids. They are UUIDv7 (time-ordered, so "newest first" is an index
//! scan) but clients must treat them as strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A UUID in the hyphenated form the API writes, and no other spelling
/// (what JSON Schema's `format: uuid` means too).
pub fn parse_uuid(s: &str) -> Option<Uuid> {
    s.parse::<uuid::fmt::Hyphenated>()
        .ok()
        .map(uuid::fmt::Hyphenated::into_uuid)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.as_hyphenated().fmt(f)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some("opaque id"))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        /// Only the hyphenated form the API writes ids in: an id is an
        /// opaque string, so no other spelling names the same thing.
        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse::<uuid::fmt::Hyphenated>().map(|h| Self(h.into_uuid()))
            }
        }
    };
}

id_type!(
    /// A shopper or an admin.
    UserId
);
id_type!(
    /// A drop: a quantity of coupons on the same terms.
    CampaignId
);
id_type!(
    /// One issued coupon.
    CouponId
);
id_type!(
    /// A background job (e.g. generating a campaign's codes).
    JobId
);
id_type!(
    /// A time sale: a limited stock of one product at a sale price.
    SaleId
);
id_type!(
    /// One order of a time sale: one unit.
    OrderId
);
