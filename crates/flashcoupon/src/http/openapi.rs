//! The OpenAPI document served at `/openapi.json` (and browsed at `/api/docs`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    accounts, campaigns, dashboard, issue, notifications, ops, spending, wallet, webhooks,
};

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "flashcoupon",
        description = "First-come-first-served coupon drops: exactly the stock, per-user limits, durable answers."
    ),
    paths(
        accounts::signup, accounts::login, accounts::bulk_users,
        campaigns::create, campaigns::list, campaigns::show, campaigns::patch,
        issue::issue, issue::my_campaign,
        wallet::my_coupons, wallet::user_coupons, wallet::show,
        spending::use_coupon, spending::cancel_use, spending::preview,
        notifications::socket, notifications::live, notifications::live_many, notifications::subscription, notifications::subscribe,
        notifications::unsubscribe, notifications::inbox, notifications::mark_read,
        webhooks::create, webhooks::list, webhooks::show, webhooks::remove, webhooks::deliveries,
        dashboard::stats, dashboard::winners, dashboard::winners_csv,
        ops::healthz, ops::readyz, ops::metrics,
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
