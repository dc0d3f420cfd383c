//! The OpenAPI document's frame (title, tags, the bearer scheme); the paths
//! come from the routers (`super::router`), where each is written once.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "flashcoupon",
        description = "First-come-first-served coupon drops: exactly the stock, per-user limits, durable answers."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "accounts", description = "Sign-up, log-in, bulk users"),
        (name = "campaigns", description = "Drops: admins write, anyone reads"),
        (name = "issuing", description = "The hot path"),
        (name = "wallet", description = "Issued coupons"),
        (name = "spending", description = "Use and cancel-use"),
        (name = "notifications", description = "Live events, live stock, subscriptions, inbox"),
        (name = "webhooks", description = "Shop-side endpoints and their delivery log"),
        (name = "admin", description = "The admin console's campaign dashboard: claim statistics, winners"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}
