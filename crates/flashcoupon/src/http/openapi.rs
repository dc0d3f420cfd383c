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

/// The answers every route of a kind can give, added to each operation that
/// does not list them already, so the document tells the truth without each
/// handler repeating them: 401 on routes that need a token, 400/413/415 on
/// routes with a body, 400 on routes with query parameters, 404 on routes
/// with an id in the path, 503 on every `/api/v1` route (storage or the gate
/// unreachable).
pub fn add_common_responses(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            let mut add = |code: &str, description: &str| {
                op.responses
                    .responses
                    .entry(code.to_owned())
                    .or_insert_with(|| error(description));
            };
            if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                add(
                    "401",
                    "unauthorized: a missing, malformed, expired, revoked or forged token",
                );
            }
            if op.request_body.is_some() {
                add(
                    "400",
                    "invalid_input: the body breaks a rule (the message names the field)",
                );
                add("413", "payload_too_large: the body is over 64 KiB");
                add("415", "unsupported_media_type: the body is not JSON");
            }
            let query = op.parameters.as_ref().is_some_and(|ps| {
                ps.iter()
                    .any(|p| matches!(p.parameter_in, ParameterIn::Query | ParameterIn::Header))
            });
            if query {
                add(
                    "400",
                    "invalid_input: a query parameter or header breaks a rule",
                );
            }
            if path.contains('{') {
                add("404", "not_found: no such resource (or not yours)");
            }
            if path.starts_with("/api/v1/") {
                add(
                    "503",
                    "unavailable: storage or the gate is unreachable; nothing was done, retry",
                );
            }
        }
    }
}
