//! The OpenAPI document's frame (title, tags, the bearer scheme); the paths
//! come from the routers (`super::router`), where each is written once.
//! Then what the derives cannot say: the answers every route of a kind
//! gives, and the rules of a request body that span its fields.
//!
//! The document is held to the server by schemathesis
//! (`scripts/schemathesis.sh`): whatever it says is valid must be accepted,
//! whatever it says is invalid must be refused, and every answer must be
//! one it lists.

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
        (name = "codes", description = "Unique and shared codes: redeem one (another door into the same claim); \
generate a campaign's unique codes in a background job, follow it, export them as CSV"),
        (name = "wallet", description = "Issued coupons"),
        (name = "spending", description = "Use, cancel-use, and reservations (reserve, confirm, release)"),
        (name = "payments", description = "Payment events from a shop's payment system: the same as the RabbitMQ queue \
`flashcoupon.payments` (with `--amqp-url`), exactly once per `event_id`"),
        (name = "points", description = "Points (적립금): a ledger that never goes negative. Earns are lots that \
expire; spends, holds and expiries take from the earliest-expiring first; refunds give back to the lots spent from. \
Shops (a service key) earn, spend, hold and refund; admins adjust with a reason"),
        (name = "sales", description = "Time sales (타임세일): a product's limited stock at a sale price, sold first \
come first served through the same admission gate as coupons; one order is one unit, paid by the shop's payment \
events, or given back to the stock when it expires unpaid or is cancelled"),
        (name = "service keys", description = "Keys for shop back ends calling server to server (`Authorization: Bearer fck_…`)"),
        (name = "notifications", description = "Live stock, subscriptions, inbox. Live events come over the WebSocket \
`/api/v1/notifications/ws`, which is not an operation here: sign in with `Authorization: Bearer <token>` on the \
upgrade, or send `{\"type\":\"auth\",\"token\":\"…\"}` first; each event arrives as \
`{\"id\",\"type\",\"at\",\"campaign_id\",\"data\"}` (see the README)."),
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
/// handler repeating them: 401 on routes that need a token, 403 on routes
/// whose token needs a role (`security(("bearer" = ["admin"]))`), 400/413/415
/// on routes with a body, 400 on routes with query parameters, 404 on routes
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
            let role = needs_role(op);
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
            if role {
                add("403", "forbidden: a valid token of another role");
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

/// Whether the operation's security requirement names a role (OpenAPI 3.1:
/// "role names which are required for the execution").
fn needs_role(op: &utoipa::openapi::path::Operation) -> bool {
    op.security.iter().flatten().any(|requirement| {
        serde_json::to_value(requirement).is_ok_and(|v| {
            v.as_object().is_some_and(|schemes| {
                schemes
                    .values()
                    .any(|roles| roles != &serde_json::json!([]))
            })
        })
    })
}

/// The rules of request bodies that span fields, which a derive cannot
/// write, added to each body's object schema beside its `properties`. The
/// server checks the same rules (the handlers' `validate`/`parse`), with
/// `null` and absent meaning the same for an optional field, as serde reads
/// them. (utoipa's model has no `oneOf` beside `properties`, nor
/// `contains`; its extension map serializes any key as written, so the
/// keywords ride there.)
///
/// What JSON Schema cannot say at all (an end after a start, a time within
/// a stored campaign's window) is in the fields' descriptions, and
/// schemathesis's generator is told in `scripts/schemathesis_hooks.py`.
pub fn add_body_rules(doc: &mut utoipa::openapi::OpenApi) {
    use serde_json::json;
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::Schema;
    let others: Vec<&str> = crate::events::EventKind::webhook_names()
        .into_iter()
        .filter(|e| *e != "campaign.stock_low")
        .collect();
    let rules = [
        // valid_days, or valid_until (optionally with valid_from): exactly one.
        (
            "NewCampaign",
            "oneOf",
            json!([
                {"required": ["valid_days"], "properties": {
                    "valid_days": {"type": "integer"},
                    "valid_until": {"type": "null"},
                    "valid_from": {"type": "null"}}},
                {"required": ["valid_until"], "properties": {
                    "valid_until": {"type": "string"},
                    "valid_days": {"type": "null"}}}
            ]),
        ),
        // A code with shared_code, and only then; a trigger only with claim.
        (
            "NewCampaign",
            "allOf",
            json!([
                {"oneOf": [
                    {"required": ["issuance", "code"], "properties": {
                        "issuance": {"const": "shared_code"},
                        "code": {"type": "string"}}},
                    {"properties": {
                        "issuance": {"enum": ["claim", "codes"]},
                        "code": {"type": "null"}}}
                ]},
                {"anyOf": [
                    {"properties": {"trigger": {"type": "null"}}},
                    {"required": ["trigger"], "properties": {
                        "trigger": {"type": "string"},
                        "issuance": {"const": "claim"}}}
                ]}
            ]),
        ),
        // At least one change.
        (
            "CampaignPatch",
            "anyOf",
            json!([
                {"required": ["paused"], "properties": {"paused": {"type": "boolean"}}},
                {"required": ["issue_ends_at"], "properties": {"issue_ends_at": {"type": "string"}}},
                {"required": ["total_quantity"], "properties": {"total_quantity": {"type": "integer"}}}
            ]),
        ),
        // At least one change.
        (
            "SalePatch",
            "anyOf",
            json!([
                {"required": ["paused"], "properties": {"paused": {"type": "boolean"}}},
                {"required": ["ends_at"], "properties": {"ends_at": {"type": "string"}}},
                {"required": ["total_quantity"], "properties": {"total_quantity": {"type": "integer"}}}
            ]),
        ),
        // Some ids, or all: exactly one.
        (
            "MarkRead",
            "oneOf",
            json!([
                {"required": ["ids"], "properties": {"ids": {"type": "array"}, "all": {"type": "null"}}},
                {"required": ["all"], "properties": {"all": {"const": true}, "ids": {"type": "null"}}}
            ]),
        ),
        // A threshold with campaign.stock_low, and only then.
        (
            "NewWebhook",
            "oneOf",
            json!([
                {"required": ["stock_low_threshold"], "properties": {
                    "events": {"contains": {"const": "campaign.stock_low"}},
                    "stock_low_threshold": {"type": "integer"}}},
                {"properties": {
                    "events": {"items": {"enum": others}},
                    "stock_low_threshold": {"type": "null"}}}
            ]),
        ),
    ];
    let schemas = &mut doc.components.get_or_insert_with(Default::default).schemas;
    for (name, keyword, rule) in rules {
        let Some(RefOr::T(Schema::Object(body))) = schemas.get_mut(name) else {
            panic!("{name} is an object schema in the document");
        };
        body.extensions
            .get_or_insert_with(Default::default)
            .insert(keyword.to_owned(), rule);
    }
}
